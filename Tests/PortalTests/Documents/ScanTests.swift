import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

@testable import PortalAPI
@testable import Shared

/// Virus scanning with a real clamd: what it finds is refused, what it passes is stored as scanned, and without a
/// verdict nothing is stored (fail closed).
@Suite("Virus scanning")
struct ScanTests {
    @Test("EICAR is refused by a real clamd, a clean file is stored as scanned, and a stopped clamd means no uploads at all")
    func scanning() async throws {
        try await ClamdTestServer.with { clamd in
            var options = APIHarness.Options()
            options.documents.clamd = ClamdScanner(address: clamd.address, timeout: .seconds(30))
            try await APIHarness.with(options) { api in
                let fixture = try await DocumentFixture.make(api)
                // EICAR behind a PDF's first bytes, so that it passes the type check and reaches the scanner.
                let infected = ClamdTestServer.infectedPDF
                let refused = try await fixture.upload(infected, name: "brief.pdf")
                #expect(refused.status == .unprocessableContent, "\(String(buffer: refused.body))")
                let clean = try await fixture.upload(DocumentFixture.pdf(size: 600_000), name: "schoon.pdf")
                #expect(clean.status == .created, "\(String(buffer: clean.body))")
                #expect(try APIHarness.object(clean)["scan"]?.stringValue == "clean")
                #expect(try await fixture.storedCounts().documents == 1)

                await clamd.stop()
                let unscanned = try await fixture.upload(DocumentFixture.pdf(), name: "later.pdf")
                #expect(unscanned.status == .serviceUnavailable)
                #expect(try APIHarness.object(unscanned)["code"]?.stringValue == "scanner-unavailable")
                #expect(unscanned.headers[.retryAfter] != nil)
                #expect(try await fixture.storedCounts() == (1, 3))
                #expect(!api.log.lines(containing: "upload refused").isEmpty)
            }
        }
    }

    @Test("the exact EICAR file, as clamd's own signature database made in the test matches it, is refused with a clear message")
    func exactEICAR() async throws {
        try await ClamdTestServer.with { clamd in
            let scanner = ClamdScanner(address: clamd.address, timeout: .seconds(30))
            let (_, verdict) = try await scanner.scan { stream in try await stream.send(ByteBuffer(bytes: ClamdTestServer.eicar)) }
            guard case .infected(let signature) = verdict else {
                Issue.record("clamd did not find EICAR: \(verdict)")
                return
            }
            #expect(signature.contains("eicar"))
            let (_, clean) = try await scanner.scan { stream in try await stream.send(ByteBuffer(string: "%PDF-1.4 nothing to see")) }
            #expect(clean == .clean)
            #expect(UploadRefusal.infected.description.contains("virus scanner found a threat"))
        }
    }
}
