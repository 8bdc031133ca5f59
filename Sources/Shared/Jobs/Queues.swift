/// The names of the portal's job queues. A process serves the queues its builder names; each queue's
/// concurrency is set per process with `PORTAL_JOB_CONCURRENCY`.
public enum Queues {
    /// Pulling from and delivering to departmental systems (the sync worker).
    public static let sync = "sync"
    /// E-mail notifications to residents (the notifier).
    public static let notifications = "notifications"
    /// Housekeeping that runs for the whole deployment: retention (the sync worker).
    public static let maintenance = "maintenance"
}
