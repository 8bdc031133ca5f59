import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import Shared

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The API's rate limits (docs/SECURITY.md, "Rate limits"), each counted for the whole deployment by ``RateLimiter``.
struct RateLimitSettings: Sendable {
    /// `PORTAL_RATE_LIMIT_LOGIN` (default `60/60`): login requests (`/auth/login`, `/auth/callback`, the dev login)
    /// per client address; an IPv6 client counts per /64, the block one subscriber usually has.
    var login: RateLimit?
    /// `PORTAL_RATE_LIMIT_DEPARTMENT` (default `100/1`): requests per department, whatever its credential (API key or
    /// ZGW subscription). A first load of many cases goes through the batch endpoint, one request per 1,000 cases.
    var department: RateLimit?
    /// `PORTAL_HTTP_TRUSTED_PROXIES` (default none): addresses or CIDR blocks of the load balancers in front of the
    /// API. From a trusted peer, the client is the last address in `X-Forwarded-For` that is not trusted; from
    /// anyone else the header is ignored (a client could write anything there).
    var trustedProxies: [IPNetwork]

    init(
        login: RateLimit? = RateLimit(requests: 60, window: .seconds(60)),
        department: RateLimit? = RateLimit(requests: 100, window: .seconds(1)),
        trustedProxies: [IPNetwork] = []
    ) {
        self.login = login
        self.department = department
        self.trustedProxies = trustedProxies
    }

    init(environment: EnvironmentReader) throws(ConfigurationError) {
        let defaults = RateLimitSettings()
        self.login = try RateLimit.read(environment, "PORTAL_RATE_LIMIT_LOGIN", default: defaults.login!)
        self.department = try RateLimit.read(environment, "PORTAL_RATE_LIMIT_DEPARTMENT", default: defaults.department!)
        var proxies: [IPNetwork] = []
        for entry in environment.string("PORTAL_HTTP_TRUSTED_PROXIES", default: "").split(separator: ",") {
            let text = entry.trimmingCharacters(in: .whitespaces)
            guard let network = IPNetwork(text) else {
                throw ConfigurationError(
                    variable: "PORTAL_HTTP_TRUSTED_PROXIES",
                    problem: "must be addresses or CIDR blocks separated by commas, got \"\(text)\"")
            }
            proxies.append(network)
        }
        self.trustedProxies = proxies
    }
}

/// Applies ``RateLimitSettings`` for the API: a refused request is a 429 problem with `Retry-After`, a count in
/// `portal_rate_limited_total{limit}`, and, the first time a key passes its limit in a window, a security event.
struct RateLimits: Sendable {
    let settings: RateLimitSettings
    let limiter: RateLimiter
    let hasher: SubjectHasher
    let security: SecurityEvents

    /// Counts a login request from the client that sent `request`.
    func login(_ request: Request, context: APIRequestContext) async throws {
        guard let limit = self.settings.login else { return }
        let client = ClientAddress.key(request, peer: context.channel.remoteAddress, trusted: self.settings.trustedProxies)
        try await self.count(
            "login", key: "login:\(client)", limit: limit, request: request, traceID: context.traceID, logger: context.logger)
    }

    /// Counts a request of `department`.
    func department(_ department: Department, _ request: Request, context: APIRequestContext) async throws {
        guard let limit = self.settings.department else { return }
        try await self.count(
            "department", key: "department:\(department.id)", limit: limit, request: request, traceID: context.traceID,
            logger: context.logger)
    }

    private func count(
        _ name: String, key: String, limit: RateLimit, request: Request, traceID: String, logger: Logger
    ) async throws {
        let decision = try await self.limiter.count(self.hasher.hash(key), limit: limit, logger: logger)
        guard case .refused(let retryAfter, let first) = decision else { return }
        Counter(label: "portal_rate_limited_total", dimensions: [("limit", name)]).increment()
        if first {
            self.security.record("rate-limited", reason: "over the \(name) limit of \(limit)", traceID: traceID, request: request)
        }
        throw Problem.tooManyRequests(retryAfter: retryAfter)
    }
}

/// Who the client is, for a per-client limit: its address, or behind trusted proxies the one they report.
enum ClientAddress {
    /// The client's address as a key: IPv4 whole, IPv6 as its /64; `unknown` without a peer address (a test router).
    static func key(_ request: Request, peer: SocketAddress?, trusted: [IPNetwork]) -> String {
        guard let peerText = peer?.ipAddress, var client = IPNetwork.bytes(peerText) else { return "unknown" }
        if !trusted.isEmpty, trusted.contains(where: { $0.contains(client) }) {
            let forwarded = request.headers[values: HTTPField.Name("X-Forwarded-For")!]
                .flatMap { $0.split(separator: ",") }
                .map { $0.trimmingCharacters(in: .whitespaces) }
            for hop in forwarded.reversed() {
                guard let address = IPNetwork.bytes(hop) else { break }
                client = address
                if !trusted.contains(where: { $0.contains(address) }) { break }
            }
        }
        let significant = client.count == 16 ? client.prefix(8) : client[...]
        return significant.map { String($0) }.joined(separator: ".")
    }
}

/// An IPv4 or IPv6 address block, `10.0.0.0/8` or `fd00::/8`; a single address is a block of one.
struct IPNetwork: Sendable, Equatable {
    let address: [UInt8]
    let prefixLength: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let address = Self.bytes(first) else { return nil }
        let length = parts.count == 2 ? Int(parts[1]) : address.count * 8
        guard let length, (0...address.count * 8).contains(length) else { return nil }
        self.address = address
        self.prefixLength = length
    }

    func contains(_ other: [UInt8]) -> Bool {
        guard other.count == self.address.count else { return false }
        var remaining = self.prefixLength
        for (mine, theirs) in zip(self.address, other) where remaining > 0 {
            let bits = min(remaining, 8)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if mine & mask != theirs & mask { return false }
            remaining -= bits
        }
        return true
    }

    /// The address's bytes: 4 for IPv4 (also when written as an IPv4-mapped IPv6 address), 16 for IPv6.
    static func bytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF { return Array(bytes[12...]) }
        return bytes
    }
}
