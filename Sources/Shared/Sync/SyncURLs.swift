public import Foundation

/// The one check of where the sync worker may send a request: a URL from a department (a notification's
/// `resourceUrl`, a pagination link, a zaak's `zaaktype`) is fetched only when it is under one of that department's
/// configured roots, so nobody can make the portal fetch another host (no SSRF).
public enum SyncURLs {
    /// Whether `url` is `root` or below it: the same scheme, host and port, a path that starts with the root's
    /// (segment by segment), and nothing that could change that meaning (user info, `..` or `.` segments, an escaped
    /// slash). Host names are compared as given, without resolving them.
    public static func isURL(_ url: URL, under root: URL) -> Bool {
        guard let target = URLComponents(url: url, resolvingAgainstBaseURL: false),
            let base = URLComponents(url: root, resolvingAgainstBaseURL: false),
            let scheme = target.scheme?.lowercased(), ["http", "https"].contains(scheme), scheme == base.scheme?.lowercased(),
            let host = target.host?.lowercased(), host == base.host?.lowercased(),
            target.user == nil, target.password == nil,
            (target.port ?? Self.defaultPort(scheme)) == (base.port ?? Self.defaultPort(scheme))
        else { return false }
        let path = target.percentEncodedPath
        // Nothing a server might read as another path: encoded dots, slashes, backslashes, semicolons or percent
        // signs (double encoding), nor a literal backslash or a `;` path parameter (`..;/`).
        let lowered = path.lowercased()
        if ["%2e", "%2f", "%5c", "%25", "%3b", "\\", ";"].contains(where: { lowered.contains($0) }) { return false }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        if segments.contains(where: { $0 == ".." || $0 == "." }) { return false }
        let prefix = base.percentEncodedPath.hasSuffix("/") ? base.percentEncodedPath : base.percentEncodedPath + "/"
        return path == base.percentEncodedPath || path.hasPrefix(prefix) || (path + "/") == prefix
    }

    private static func defaultPort(_ scheme: String) -> Int { scheme == "https" ? 443 : 80 }
}
