extension Duration {
    /// The duration in seconds, with fractions, for SQL such as `make_interval(secs => ...)`.
    public var inSeconds: Double {
        Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
    }
}
