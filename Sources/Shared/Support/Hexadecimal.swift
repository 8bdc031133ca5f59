extension Sequence<UInt8> {
    /// The bytes as lowercase hexadecimal, two characters each. (`String(format: "%02x")` per byte costs a format
    /// parse per byte, which showed up in the profile of every request.)
    public var hexadecimal: String {
        let digits = Array("0123456789abcdef".utf8)
        var characters: [UInt8] = []
        characters.reserveCapacity(self.underestimatedCount * 2)
        for byte in self {
            characters.append(digits[Int(byte >> 4)])
            characters.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: characters, as: UTF8.self)
    }
}
