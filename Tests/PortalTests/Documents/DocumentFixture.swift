import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing

@testable import PortalAPI
@testable import Shared

/// A department with a case type, a resident's case in a status that takes uploads, and the resident logged in.
struct DocumentFixture: Sendable {
    static let bsn = "999993653"
    static let otherBSN = "999990019"

    let api: APIHarness
    let department: HTTPFields
    let session: APIHarness.Session
    let caseID: String
    let reference = "Z-2026-001"

    static func make(_ api: APIHarness, status: String? = "in-behandeling") async throws -> DocumentFixture {
        let department = try await CaseTrackingTests.department(api, name: "Burgerzaken")
        let created = try await api.request(
            .put, "/api/v1/department/cases/Z-2026-001", headers: department, json: CaseTrackingTests.caseBody(bsn: self.bsn))
        try #require(created.status == .created, "\(String(buffer: created.body))")
        if let status { try await self.setStatus(api, department: department, status, event: "e-\(status)") }
        let session = try await api.devLogin(bsn: self.bsn)
        let list = try APIHarness.object(try await api.request(.get, "/api/v1/cases", headers: session.headers))
        let caseID = try #require(list["items"]?.arrayValue?.first?.objectValue?["id"]?.stringValue)
        return DocumentFixture(api: api, department: department, session: session, caseID: caseID)
    }

    static func setStatus(
        _ api: APIHarness, department: HTTPFields, _ status: String, event: String, at: String = "2026-11-21T10:00:00Z"
    )
        async throws
    {
        let pushed = try await api.request(
            .post, "/api/v1/department/cases/Z-2026-001/statuses", headers: department,
            json: CaseTrackingTests.status(event, status, at: at, text: status))
        try #require(pushed.status == .created || pushed.status == .ok, "\(String(buffer: pushed.body))")
    }

    /// A PDF of `size` bytes (a header and filler: the type check reads only the start).
    static func pdf(size: Int = 1000) -> [UInt8] {
        var bytes = Array("%PDF-1.7\n".utf8)
        var generator = SystemRandomNumberGenerator()
        while bytes.count < size { bytes.append(UInt8.random(in: 0...255, using: &generator)) }
        return Array(bytes.prefix(size))
    }

    /// Uploads `bytes` as a raw body named `fileName`.
    func upload(
        _ bytes: [UInt8], name fileName: String, session: APIHarness.Session? = nil, caseID: String? = nil
    ) async throws
        -> TestResponse
    {
        var headers = (session ?? self.session).unsafeHeaders
        headers[.contentType] = "application/octet-stream"
        headers[.contentDisposition] = FileName.contentDisposition(fileName)
        return try await self.api.client.execute(
            uri: "/api/v1/cases/\(caseID ?? self.caseID)/documents", method: .post, headers: headers, body: ByteBuffer(bytes: bytes))
    }

    /// Uploads `bytes` as the `file` part of a form, after a field the endpoint does not use.
    func uploadForm(_ bytes: [UInt8], name fileName: String) async throws -> TestResponse {
        var headers = self.session.unsafeHeaders
        headers[.contentType] = "multipart/form-data; boundary=portal-test-boundary"
        return try await self.api.client.execute(
            uri: "/api/v1/cases/\(self.caseID)/documents", method: .post, headers: headers,
            body: Self.form(["note": Array("ignored".utf8)], file: ("file", fileName, bytes)))
    }

    /// A `multipart/form-data` body with the boundary `portal-test-boundary`.
    static func form(_ fields: KeyValuePairs<String, [UInt8]>, file: (name: String, fileName: String, bytes: [UInt8])?) -> ByteBuffer {
        var body = ByteBuffer()
        for (name, value) in fields {
            body.writeString("--portal-test-boundary\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n")
            body.writeBytes(value)
            body.writeString("\r\n")
        }
        if let file {
            body.writeString(
                "--portal-test-boundary\r\nContent-Disposition: form-data; name=\"\(file.name)\"; filename=\"\(file.fileName)\"\r\n"
                    + "Content-Type: application/octet-stream\r\n\r\n")
            body.writeBytes(file.bytes)
            body.writeString("\r\n")
        }
        body.writeString("--portal-test-boundary--\r\n")
        return body
    }

    /// How many document rows exist, stored or not, and how many content chunks.
    func storedCounts() async throws -> (documents: Int, chunks: Int) {
        let rows = try await self.api.database.client.query(
            "SELECT (SELECT count(*) FROM documents)::int8, (SELECT count(*) FROM document_chunks)::int8")
        for try await (documents, chunks) in rows.decode((Int64, Int64).self) { return (Int(documents), Int(chunks)) }
        return (0, 0)
    }
}

extension JSONValue {
    var arrayValue: [JSONValue]? {
        if case .array(let values) = self { values } else { nil }
    }

    var objectValue: [String: JSONValue]? {
        if case .object(let object) = self { object } else { nil }
    }

    var boolValue: Bool? {
        if case .bool(let value) = self { value } else { nil }
    }
}
