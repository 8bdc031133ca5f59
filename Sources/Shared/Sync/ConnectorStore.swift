public import Foundation
public import Logging
public import PostgresNIO

/// How the sync worker reaches one department's own case system (docs/SYNC.md).
public struct Connector: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// A change feed: `GET <url>/changes?after=<cursor>&limit=<n>` (docs/FEED.md).
        case feed
        /// A ZGW zaaksysteem (Open Zaak and others following the VNG standard).
        case zgw
    }

    /// What each kind needs to know, stored as JSON.
    public struct Settings: Sendable, Equatable, Codable {
        /// Feed: the base URL the feed's `/changes` is under.
        public var url: URL?
        /// ZGW: the Zaken API's root, e.g. `https://zaken.example.nl/zaken/api/v1/`.
        public var zaken: URL?
        /// ZGW: the Catalogi API's root.
        public var catalogi: URL?
        /// ZGW: the highest `vertrouwelijkheidaanduiding` of a case shown to residents.
        public var maxConfidentiality: String?
        /// ZGW, for delivering residents' uploads: the Documenten API's root. Without it the department fetches them.
        public var documenten: URL?
        /// ZGW delivery: the informatieobjecttype (in the Catalogi API) of a resident's upload.
        public var informatieobjecttype: URL?
        /// ZGW delivery: the RSIN of the organisation that keeps the documents (`bronorganisatie`).
        public var bronorganisatie: String?

        public init(
            url: URL? = nil, zaken: URL? = nil, catalogi: URL? = nil, maxConfidentiality: String? = nil, documenten: URL? = nil,
            informatieobjecttype: URL? = nil, bronorganisatie: String? = nil
        ) {
            self.url = url
            self.zaken = zaken
            self.catalogi = catalogi
            self.maxConfidentiality = maxConfidentiality
            self.documenten = documenten
            self.informatieobjecttype = informatieobjecttype
            self.bronorganisatie = bronorganisatie
        }

        /// Every URL under which this connector may fetch anything.
        public var roots: [URL] { [self.url, self.zaken, self.catalogi, self.documenten].compactMap { $0 } }

        /// Whether residents' uploads are delivered to a Documenten API.
        public var deliversDocuments: Bool { self.documenten != nil && self.informatieobjecttype != nil && self.bronorganisatie != nil }
    }

    public var departmentID: UUID
    public var kind: Kind
    public var settings: Settings
    /// ZGW: the client id in our JWTs.
    public var clientID: String?
    /// The feed's bearer token, or the secret our ZGW JWTs are signed with. Never printed or logged.
    public var secret: String?
    /// How often the feed is pulled or ZGW statuses are reconciled.
    public var interval: Duration
    /// At most this many requests to the department at once, over all sync workers.
    public var maxConcurrent: Int
    /// At most this many requests per second to the department, over all sync workers.
    public var maxPerSecond: Double
    public var paused: Bool

    public init(
        departmentID: UUID,
        kind: Kind,
        settings: Settings,
        clientID: String? = nil,
        secret: String? = nil,
        interval: Duration = .seconds(10),
        maxConcurrent: Int = 4,
        maxPerSecond: Double = 20,
        paused: Bool = false
    ) {
        self.departmentID = departmentID
        self.kind = kind
        self.settings = settings
        self.clientID = clientID
        self.secret = secret
        self.interval = interval
        self.maxConcurrent = maxConcurrent
        self.maxPerSecond = maxPerSecond
        self.paused = paused
    }
}

/// What operators see of a connector (`PortalAPI department status`).
public struct SyncStatus: Sendable, Codable {
    public var departmentID: UUID
    public var department: String
    public var kind: Connector.Kind
    public var paused: Bool
    public var lastSuccessAt: Date?
    public var lastFailureAt: Date?
    public var lastError: String?
    public var consecutiveFailures: Int
    /// Set while the circuit breaker keeps requests away from the department.
    public var openUntil: Date?
    /// Seconds since the oldest change known to wait; 0 when caught up.
    public var lagSeconds: Double
    public var changesApplied: Int64
    public var changesRefused: Int64
}

public enum ConnectorError: Error, Equatable, CustomStringConvertible {
    case unknownDepartment
    case noConnector
    case weakSecret

    public var description: String {
        switch self {
        case .unknownDepartment: "there is no active department with this id"
        case .noConnector: "this department has no connector: connect it first (department connect-feed or connect-zgw)"
        case .weakSecret:
            "a ZGW connector needs a client id and a secret of at least 32 bytes (HS256 keys shorter than the hash are refused)"
        }
    }
}

/// The `department_connectors` and `department_sync` tables.
public struct ConnectorStore: Sendable {
    public init() {}

    /// Connects a department (or replaces its connector) and starts its schedule job in the same transaction. The
    /// sync position is kept, unless the kind or the system's URL changed (a new system does not know our cursor).
    /// For ZGW, returns a callback credential for the Open Notificaties abonnement when there was none or
    /// `rotateCredential` asks for a new one (shown once; only its hash is stored); otherwise nil, and the
    /// abonnement's `auth` keeps working.
    public func connect(
        _ connector: Connector, rotateCredential: Bool = false, jobs: JobQueue, client: PostgresClient, logger: Logger
    ) async throws -> String? {
        if connector.kind == .zgw, connector.clientID?.isEmpty != false || (connector.secret?.utf8.count ?? 0) < 32 {
            throw ConnectorError.weakSecret
        }
        let callback = connector.kind == .zgw ? SecretToken.generate(prefix: Self.callbackPrefix) : nil
        let settings = String(decoding: try JSONEncoder().encode(connector.settings), as: UTF8.self)
        return try await client.transaction(logger: logger) { connection -> String? in
            let active = try await connection.query(
                "SELECT 1 FROM departments WHERE id = \(connector.departmentID) AND revoked_at IS NULL FOR UPDATE", logger: logger)
            guard try await active.collect().count == 1 else { throw ConnectorError.unknownDepartment }
            let before = try await self.find(departmentID: connector.departmentID, on: connection, logger: logger)
            let rows = try await connection.query(
                """
                INSERT INTO department_connectors (department_id, kind, settings, client_id, secret, callback_hash,
                    interval_seconds, max_concurrent, max_per_second)
                VALUES (\(connector.departmentID), \(connector.kind.rawValue), \(settings)::jsonb, \(connector.clientID),
                    \(connector.secret), \(callback.map(SecretToken.hash)), \(Int(connector.interval.seconds)),
                    \(connector.maxConcurrent), \(connector.maxPerSecond))
                ON CONFLICT (department_id) DO UPDATE
                SET kind = excluded.kind, settings = excluded.settings, client_id = excluded.client_id,
                    secret = excluded.secret, interval_seconds = excluded.interval_seconds,
                    max_concurrent = excluded.max_concurrent, max_per_second = excluded.max_per_second, updated_at = now(),
                    callback_hash = CASE
                        WHEN excluded.kind <> 'zgw' THEN NULL
                        WHEN \(rotateCredential) OR department_connectors.callback_hash IS NULL OR department_connectors.kind <> 'zgw'
                            THEN excluded.callback_hash
                        ELSE department_connectors.callback_hash END
                RETURNING callback_hash IS NOT DISTINCT FROM \(callback.map(SecretToken.hash))
                """,
                logger: logger
            )
            let issued = try await rows.decode(Bool.self).first { _ in true } ?? false
            try await connection.query(
                """
                INSERT INTO department_sync (department_id) VALUES (\(connector.departmentID)) ON CONFLICT DO NOTHING;
                """,
                logger: logger
            )
            // One request slot per allowed concurrent request.
            try await connection.query(
                """
                DELETE FROM department_request_slots WHERE department_id = \(connector.departmentID) AND slot >= \(connector.maxConcurrent)
                """,
                logger: logger
            )
            try await connection.query(
                """
                INSERT INTO department_request_slots (department_id, slot)
                SELECT \(connector.departmentID), s FROM generate_series(0, \(connector.maxConcurrent) - 1) AS s
                ON CONFLICT DO NOTHING
                """,
                logger: logger
            )
            if let before,
                before.kind != connector.kind || before.settings.url != connector.settings.url
                    || before.settings.zaken != connector.settings.zaken
            {
                try await connection.query(
                    "UPDATE department_sync SET cursor = NULL, behind_since = NULL WHERE department_id = \(connector.departmentID)",
                    logger: logger)
            }
            _ = try await jobs.enqueue(try SyncJobs.schedule(for: connector), on: connection)
            return issued ? callback : nil
        }
    }

    /// ZGW callback credentials start with this, so that secret scanners and people recognise them.
    public static let callbackPrefix = "portal_zgw_"

    /// A department's connector, if it has one and the department is active.
    public func find(departmentID: UUID, on connection: PostgresConnection, logger: Logger) async throws -> Connector? {
        try await self.connectors(departmentID, on: connection, logger: logger).first
    }

    /// Every active department's connector.
    public func all(on connection: PostgresConnection, logger: Logger) async throws -> [Connector] {
        try await self.connectors(nil, on: connection, logger: logger)
    }

    /// The department whose ZGW abonnement sends this credential (the `Authorization` value, with or without a
    /// `Bearer` or `Token` scheme in front), if it is active.
    public func department(callbackCredential: String, client: PostgresClient, logger: Logger) async throws -> Department? {
        let rows = try await client.query(
            """
            SELECT d.id, d.name, d.created_at, d.revoked_at
            FROM department_connectors c JOIN departments d ON d.id = c.department_id
            WHERE c.callback_hash = \(SecretToken.hash(callbackCredential)) AND c.kind = 'zgw' AND d.revoked_at IS NULL
            """,
            logger: logger
        )
        return try await DepartmentStore.decode(rows).first
    }

    /// Pauses or resumes the sync of a department. While paused, its jobs wait; nothing is lost.
    public func setPaused(_ paused: Bool, departmentID: UUID, client: PostgresClient, logger: Logger) async throws {
        let rows = try await client.query(
            """
            UPDATE department_connectors
            SET paused_at = CASE WHEN \(paused) THEN coalesce(paused_at, now()) END, updated_at = now()
            WHERE department_id = \(departmentID) RETURNING 1
            """,
            logger: logger
        )
        guard try await rows.collect().count == 1 else { throw ConnectorError.noConnector }
    }

    /// Every connector's state, for operators.
    public func status(client: PostgresClient, logger: Logger) async throws -> [SyncStatus] {
        let rows = try await client.query(
            """
            SELECT c.department_id, d.name, c.kind, c.paused_at IS NOT NULL, s.last_success_at, s.last_failure_at,
                   s.last_error, s.consecutive_failures, CASE WHEN s.open_until > now() THEN s.open_until END,
                   coalesce(extract(epoch FROM now() - s.behind_since), 0)::float8, s.changes_applied, s.changes_refused
            FROM department_connectors c
            JOIN departments d ON d.id = c.department_id
            JOIN department_sync s ON s.department_id = c.department_id
            ORDER BY d.name
            """,
            logger: logger
        )
        var statuses: [SyncStatus] = []
        for try await row in rows {
            let (id, name, kind, paused, success, failure, error, failures, open, lag, applied, refused) = try row.decode(
                (UUID, String, String, Bool, Date?, Date?, String?, Int, Date?, Double, Int64, Int64).self)
            statuses.append(
                SyncStatus(
                    departmentID: id, department: name, kind: Connector.Kind(rawValue: kind) ?? .feed, paused: paused,
                    lastSuccessAt: success, lastFailureAt: failure, lastError: error, consecutiveFailures: failures,
                    openUntil: open, lagSeconds: lag, changesApplied: applied, changesRefused: refused))
        }
        return statuses
    }

    /// One department's connector, or (nil) every one.
    private func connectors(_ departmentID: UUID?, on connection: PostgresConnection, logger: Logger) async throws -> [Connector] {
        let rows = try await connection.query(
            """
            SELECT c.department_id, c.kind, c.settings::text, c.client_id, c.secret, c.interval_seconds,
                   c.max_concurrent, c.max_per_second, c.paused_at IS NOT NULL
            FROM department_connectors c JOIN departments d ON d.id = c.department_id
            WHERE d.revoked_at IS NULL AND (\(departmentID)::uuid IS NULL OR c.department_id = \(departmentID))
            ORDER BY c.department_id
            """,
            logger: logger
        )
        var connectors: [Connector] = []
        for try await row in rows {
            let (id, kind, settings, clientID, secret, interval, concurrent, perSecond, paused) = try row.decode(
                (UUID, String, String, String?, String?, Int, Int, Double, Bool).self)
            guard let kind = Connector.Kind(rawValue: kind) else { continue }
            connectors.append(
                Connector(
                    departmentID: id, kind: kind, settings: try JSONDecoder().decode(Connector.Settings.self, from: Data(settings.utf8)),
                    clientID: clientID, secret: secret, interval: .seconds(interval), maxConcurrent: concurrent,
                    maxPerSecond: perSecond, paused: paused))
        }
        return connectors
    }
}

/// ZGW's `vertrouwelijkheidaanduiding`, from open to secret.
public enum ZGWConfidentiality {
    public static let levels = [
        "openbaar", "beperkt_openbaar", "intern", "zaakvertrouwelijk", "vertrouwelijk", "confidentieel", "geheim", "zeer_geheim",
    ]

    /// Whether a case marked `level` may be shown to residents under a maximum of `maximum`; an unknown level may not.
    public static func allows(_ level: String, maximum: String) -> Bool {
        guard let rank = Self.levels.firstIndex(of: level), let limit = Self.levels.firstIndex(of: maximum) else { return false }
        return rank <= limit
    }
}
