import Foundation
import Shared
import Testing

@testable import PortalAPI

@Suite("RFC 3339 times in request bodies")
struct TimestampTests {
    @Test("fractions are kept to the microsecond, with any zone; malformed times are refused")
    func fractions() throws {
        let whole = try #require(JSONFields.parseTimestamp("2026-11-21T10:00:00Z"))
        #expect(whole == Date(timeIntervalSince1970: 1_795_255_200))
        let micro = try #require(JSONFields.parseTimestamp("2026-11-21T10:00:00.123456Z"))
        #expect(abs(micro.timeIntervalSince(whole) - 0.123456) < 1e-7)
        let offset = try #require(JSONFields.parseTimestamp("2026-11-21T11:00:00.5+01:00"))
        let nano = try #require(JSONFields.parseTimestamp("2026-11-21T10:00:00.1234567891234Z"))
        #expect(abs(nano.timeIntervalSince(whole) - 0.123456789) < 1e-7)
        #expect(abs(offset.timeIntervalSince(whole) - 0.5) < 1e-7)
        for bad in [
            "2026-11-21T10:00:00", "2026-11-21T10:00:00.Z", "2026-11-20T09:12.5:00Z", "2026-11-21T10:00:00.5",
            "2026-11-21 10:00:00Z", "gisteren",
        ] {
            #expect(JSONFields.parseTimestamp(bad) == nil, "\(bad)")
        }
    }
}
