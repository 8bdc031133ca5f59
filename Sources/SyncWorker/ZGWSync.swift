import Foundation
import Logging
import Metrics
import PostgresNIO
import Shared

/// Follows ZGW zaaksystemen (docs/SYNC.md, "ZGW"): a `sync.zgw.status` job per status notification fetches the
/// status, its status type, the zaak, its zaaktype and the initiator, and applies the status exactly as a department
/// push would (the status's URL is the event id, so a repeat is a replay). A `sync.zgw.reconcile` job per
/// department, snoozing for the connector's interval between runs, lists the zaken started within the lookback and
/// starts a status job for every current status the portal does not have: notifications Open Notificaties gave up
/// on still arrive within one interval.
struct ZGWSync: Sendable {
    let client: DepartmentClient
    let database: PostgresClient
    let jobs: JobQueue
    /// How far back reconciliation looks for zaken (by `startdatum`).
    let lookback: Duration
    /// How long fetched zaaktypen and statustypen are used before they are fetched again.
    static let typeLifetime: Duration = .seconds(24 * 3600)

    func register(in registry: inout JobRegistry) {
        registry.register(SyncJobs.zgwStatus) { payload, context in try await self.syncStatus(payload, context: context) }
        registry.register(SyncJobs.zgwReconcile) { payload, context in try await self.reconcile(payload.department, context: context) }
    }

    // MARK: One status

    func syncStatus(_ payload: SyncJobs.ZGWStatus, context: JobContext) async throws {
        var logger = context.logger
        logger[metadataKey: "portal.department.id"] = "\(payload.department)"
        guard let connector = try await self.connector(payload.department, logger: logger) else { return }
        let zgw = ZGWClient(client: self.client, connector: connector, logger: logger)
        let fetched: Fetched
        do {
            fetched = try await self.fetchChange(payload.status, zgw: zgw, connector: connector, logger: logger)
        } catch let error as SyncError where error.isTransient {
            throw try await self.client.gate.backOff(payload.department, after: error, logger: logger)
        } catch let error as SyncError {
            // About this status only (a 404, a malformed answer, a refused URL): recorded, and the department is fine.
            logger.warning("a ZGW status cannot be read; it is left out", metadata: ["error": "\(error)"])
            try await self.database.transaction(logger: logger) { connection in
                try await self.refuse(payload.department, reference: nil, reason: error.description, on: connection, logger: logger)
                try await self.client.gate.succeeded(payload.department, on: connection)
            }
            return
        }
        let change: CaseChange
        switch fetched {
        case .skipped(let reason):
            // Not for residents: remembered, so reconciliation does not fetch it again.
            try await self.database.transaction(logger: logger) { connection in
                try await connection.query(
                    """
                    INSERT INTO zgw_skipped (department_id, status_url, reason) VALUES (\(payload.department), \(payload.status.absoluteString), \(reason))
                    ON CONFLICT DO NOTHING
                    """,
                    logger: logger
                )
                try await self.client.gate.succeeded(payload.department, on: connection)
            }
            return
        case .change(let found): change = found
        }
        let outcome = try await self.database.transaction(logger: logger) { connection in
            let outcome = try await CaseStore().apply(
                [change], departmentID: payload.department, jobs: self.jobs, traceID: context.job.traceID, on: connection,
                logger: logger
            ).first
            if case .refused(let error)? = outcome {
                try await self.refuse(
                    payload.department, reference: change.reference, reason: error.description, on: connection, logger: logger)
            }
            // Last: the department's row is locked only for the commit.
            try await self.client.gate.succeeded(payload.department, on: connection)
            return outcome
        }
        let department = SyncGauges.label(payload.department)
        if case .refused(let error)? = outcome {
            Counter(label: "portal_sync_changes_total", dimensions: [department, ("outcome", "refused")]).increment()
            logger.warning("a ZGW status could not be applied", metadata: ["error": "\(error)"])
            return
        }
        Counter(label: "portal_sync_changes_total", dimensions: [department, ("outcome", "applied")]).increment()
        if let notifiedAt = payload.notifiedAt {
            Timer(label: "portal_sync_lag_seconds", dimensions: [department], preferredDisplayUnit: .seconds)
                .recordNanoseconds(Int64(max(0, Date().timeIntervalSince(notifiedAt)) * 1e9))
        }
    }

    enum Fetched {
        case change(CaseChange)
        /// The zaak is not for residents to see, for this reason.
        case skipped(String)
    }

    /// The case change for one status, or why the zaak is not for residents to see.
    func fetchChange(_ statusURL: URL, zgw: ZGWClient, connector: Connector, logger: Logger) async throws -> Fetched {
        let status = try await zgw.get(ZGWStatus.self, statusURL)
        let zaak = try await zgw.get(ZGWZaak.self, status.zaak, crs: true)
        var (zaaktype, statustypen) = try await self.types(zaak.zaaktype, zgw: zgw, fresh: false, logger: logger)
        if !statustypen.contains(where: { $0.url == status.statustype }) {
            // A statustype added since the zaaktype was cached.
            (zaaktype, statustypen) = try await self.types(zaak.zaaktype, zgw: zgw, fresh: true, logger: logger)
        }
        guard zaaktype.indicatieInternOfExtern == "extern" else { return self.skip("intern", logger: logger) }
        let maximum = connector.settings.maxConfidentiality ?? "openbaar"
        guard ZGWConfidentiality.allows(zaak.vertrouwelijkheidaanduiding, maximum: maximum) else {
            return self.skip("confidential", logger: logger)
        }
        guard let statustype = statustypen.first(where: { $0.url == status.statustype }) else {
            throw SyncError.malformed("the status's statustype is not one of its zaaktype's")
        }
        guard let subject = try await self.initiator(of: zaak, zgw: zgw) else { return self.skip("no-initiator", logger: logger) }
        guard CaseCodes.isReference(zaak.identificatie) else {
            throw SyncError.malformed("the zaak's identificatie is not usable as a reference")
        }
        guard let setAt = JSONFields.parseTimestamp(status.datumStatusGezet) else {
            throw SyncError.malformed("datumStatusGezet is not a time with a zone")
        }
        let caseType = try await self.caseType(zaaktype, statustypen, departmentID: connector.departmentID, logger: logger)
        let input = CaseInput(
            subject: subject,
            caseTypeCode: caseType.code,
            title: zaak.omschrijving.flatMap { $0.isEmpty ? nil : String($0.prefix(200)) } ?? zaaktype.omschrijving,
            submittedAt: Self.date(zaak.registratiedatum ?? zaak.startdatum) ?? setAt,
            dueDate: zaak.uiterlijkeEinddatumAfdoening ?? zaak.einddatumGepland,
            language: .nl
        )
        let event = NewStatusEvent(
            eventID: status.url.absoluteString,
            statusCode: Self.code(of: statustype),
            text: LocalizedText(nl: statustype.statustekst.flatMap { $0.isEmpty ? nil : $0 } ?? statustype.omschrijving),
            setAt: setAt,
            // The zaaktype says whether to inform the initiator, also of the first status ("Ontvangen").
            informs: statustype.informeren
        )
        return .change(CaseChange(reference: zaak.identificatie, fields: .init(input, caseType: caseType), statuses: [event]))
    }

    /// The zaak's initiator as a subject: a BSN for a person, a KvK number for an organisation.
    private func initiator(of zaak: ZGWZaak, zgw: ZGWClient) async throws -> Subject? {
        guard let roots = zgw.connector.settings.zaken,
            var components = URLComponents(url: roots.appendingPathComponent("rollen"), resolvingAgainstBaseURL: false)
        else { return nil }
        components.queryItems = [
            URLQueryItem(name: "zaak", value: zaak.url.absoluteString), URLQueryItem(name: "omschrijvingGeneriek", value: "initiator"),
        ]
        guard let url = components.url else { return nil }
        for rol in try await zgw.all(ZGWRol.self, url, maximumPages: 10) {
            let identification = rol.betrokkeneIdentificatie
            switch rol.betrokkeneType {
            case "natuurlijk_persoon":
                if let bsn = identification?.inpBsn, let subject = try? Subject(kind: .bsn, validating: bsn) { return subject }
            case "niet_natuurlijk_persoon":
                if let number = identification?.kvkNummer, let subject = try? Subject(kind: .kvk, validating: number) { return subject }
            default: continue
            }
        }
        return nil
    }

    private func skip(_ reason: String, logger: Logger) -> Fetched {
        Counter(label: "portal_sync_zgw_skipped_total", dimensions: [("reason", reason)]).increment()
        logger.info("a ZGW zaak is not shown to residents", metadata: ["portal.sync.reason": "\(reason)"])
        return .skipped(reason)
    }

    private func refuse(
        _ department: UUID, reference: String?, reason: String, on connection: PostgresConnection, logger: Logger
    ) async throws {
        try await connection.query(
            "INSERT INTO sync_refusals (department_id, reference, reason) VALUES (\(department), \(reference), \(reason))",
            logger: logger
        )
        try await connection.query(
            "UPDATE department_sync SET changes_refused = changes_refused + 1 WHERE department_id = \(department)", logger: logger)
    }

    // MARK: Types

    /// The zaaktype and its statustypen, from the cache while fresh, else from the Catalogi API.
    private func types(_ url: URL, zgw: ZGWClient, fresh refetch: Bool, logger: Logger) async throws -> (ZGWZaakType, [ZGWStatusType]) {
        struct Cached: Codable {
            let zaaktype: ZGWZaakType
            let statustypen: [ZGWStatusType]
        }
        let fresh = try await self.database.query(
            """
            SELECT body::text FROM zgw_resources
            WHERE department_id = \(zgw.connector.departmentID) AND url = \(url.absoluteString)
              AND fetched_at > now() - \(Self.typeLifetime.seconds) * interval '1 second'
            """,
            logger: logger
        ).decode(String.self).first { _ in true }
        if !refetch, let fresh, let cached = try? JSONDecoder().decode(Cached.self, from: Data(fresh.utf8)) {
            return (cached.zaaktype, cached.statustypen)
        }
        let zaaktype = try await zgw.get(ZGWZaakType.self, url)
        guard let catalogi = zgw.connector.settings.catalogi,
            var components = URLComponents(url: catalogi.appendingPathComponent("statustypen"), resolvingAgainstBaseURL: false)
        else { throw SyncError.malformed("the ZGW connector has no Catalogi API") }
        components.queryItems = [URLQueryItem(name: "zaaktype", value: url.absoluteString)]
        guard let list = components.url else { throw SyncError.malformed("the zaaktype URL does not fit in a query") }
        let statustypen = try await zgw.all(ZGWStatusType.self, list, maximumPages: 10).sorted { $0.volgnummer < $1.volgnummer }
        let body = String(decoding: try JSONEncoder().encode(Cached(zaaktype: zaaktype, statustypen: statustypen)), as: UTF8.self)
        try await self.database.query(
            """
            INSERT INTO zgw_resources (department_id, url, body) VALUES (\(zgw.connector.departmentID), \(url.absoluteString), \(body)::jsonb)
            ON CONFLICT (department_id, url) DO UPDATE SET body = excluded.body, fetched_at = now()
            """,
            logger: logger
        )
        return (zaaktype, statustypen)
    }

    /// The portal's case type for a zaaktype: defined from it, and defined again when the zaaktype changed (name,
    /// term, statustypen), so the case type always says what the zaaktype says.
    private func caseType(
        _ zaaktype: ZGWZaakType, _ statustypen: [ZGWStatusType], departmentID: UUID, logger: Logger
    ) async throws -> CaseType {
        let code = Self.code(of: zaaktype)
        let name = LocalizedText(nl: zaaktype.omschrijving)
        let termDays = zaaktype.doorlooptijd.flatMap(Self.days)
        let statusTypes = statustypen.map(Self.statusType)
        return try await self.database.transaction(logger: logger) { connection in
            let store = CaseTypeStore()
            if let found = try await store.find(departmentID: departmentID, code: code, on: connection, logger: logger),
                found.name == name, found.termDays == termDays, found.statusTypes == statusTypes
            {
                return found
            }
            return try await store.put(
                departmentID: departmentID, code: code, name: name, termDays: termDays, statusTypes: statusTypes, on: connection,
                logger: logger
            ).0
        }
    }

    /// A case type code from a zaaktype: its `identificatie` where that is a valid code, else the URL's last segment.
    static func code(of zaaktype: ZGWZaakType) -> String {
        CaseCodes.isCode(zaaktype.identificatie) ? zaaktype.identificatie : String(zaaktype.url.lastPathComponent.prefix(100))
    }

    /// A status type code: the statustype URL's last segment (its UUID), which never changes.
    static func code(of statustype: ZGWStatusType) -> String { String(statustype.url.lastPathComponent.prefix(100)) }

    static func statusType(_ statustype: ZGWStatusType) -> StatusType {
        StatusType(
            code: Self.code(of: statustype), name: LocalizedText(nl: statustype.omschrijving), informs: statustype.informeren ?? true,
            final: statustype.isEindstatus ?? false)
    }

    /// Whole days of an ISO 8601 duration made of days, weeks, months or years (`P56D`, `P8W`, `P3M`, `P1Y`).
    static func days(_ duration: String) -> Int? {
        guard duration.hasPrefix("P"), !duration.contains("T") else { return nil }
        var total = 0
        var number = ""
        for character in duration.dropFirst() {
            if character.isNumber {
                number.append(character)
                continue
            }
            guard let value = Int(number) else { return nil }
            switch character {
            case "D": total += value
            case "W": total += value * 7
            case "M": total += value * 30
            case "Y": total += value * 365
            default: return nil
            }
            number = ""
        }
        return number.isEmpty && total > 0 ? min(total, 3650) : nil
    }

    /// A ZGW date (`YYYY-MM-DD`) as the start of that day in the Netherlands.
    static func date(_ text: String) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Europe/Amsterdam")!
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3 else { return nil }
        return calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2]))
    }

    // MARK: Reconciliation

    func reconcile(_ department: UUID, context: JobContext) async throws {
        var logger = context.logger
        logger[metadataKey: "portal.department.id"] = "\(department)"
        guard let connector = try await self.connector(department, logger: logger), let zaken = connector.settings.zaken else { return }
        let zgw = ZGWClient(client: self.client, connector: connector, logger: logger)
        let since = Date().addingTimeInterval(-self.lookback.seconds)
        var components = URLComponents(url: zaken.appendingPathComponent("zaken"), resolvingAgainstBaseURL: false)
        components?.queryItems = [URLQueryItem(name: "startdatum__gte", value: Self.dayFormat.string(from: since))]
        guard let url = components?.url else { return }
        let current: [URL]
        do {
            current = try await zgw.all(ZGWZaak.self, url, crs: true).compactMap(\.status)
        } catch let error as SyncError {
            // The list itself failing is the department's trouble, whatever the kind: back off and try again.
            throw try await self.client.gate.backOff(department, after: error, logger: logger)
        }
        let started = try await self.database.transaction(logger: logger) { connection in
            let urls = current.map(\.absoluteString)
            let known = try await connection.query(
                """
                SELECT event_id FROM status_events WHERE department_id = \(department) AND event_id = ANY(\(urls))
                UNION ALL SELECT status_url FROM zgw_skipped WHERE department_id = \(department) AND status_url = ANY(\(urls))
                """,
                logger: logger
            ).decode(String.self).reduce(into: Set<String>()) { $0.insert($1) }
            let missing = current.filter { !known.contains($0.absoluteString) }
            let jobs = try missing.map {
                try SyncJobs.zgwStatusJob(department: department, status: $0, notifiedAt: nil, traceID: context.job.traceID)
            }
            let started = try await self.jobs.enqueue(jobs, on: connection).filter { $0.jobID != nil }.count
            try await self.client.gate.succeeded(department, on: connection)
            return started
        }
        if started > 0 {
            logger.warning(
                "reconciliation found statuses whose notification never came; they are fetched now",
                metadata: ["portal.sync.missing": "\(started)"])
            Counter(label: "portal_sync_zgw_reconciled_total", dimensions: [SyncGauges.label(department)]).increment(by: started)
        }
        throw JobSnooze(for: connector.interval)
    }

    private static let dayFormat: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "Europe/Amsterdam")
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter
    }()

    // MARK: Shared steps

    /// The department's ZGW connector; nil (the job ends) when it is gone or no longer ZGW.
    private func connector(_ department: UUID, logger: Logger) async throws -> Connector? {
        let connector = try await self.database.withConnection { connection in
            try await ConnectorStore().find(departmentID: department, on: connection, logger: logger)
        }
        guard let connector, connector.kind == .zgw else { return nil }
        return connector
    }
}
