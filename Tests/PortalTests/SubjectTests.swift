import Testing

@testable import Shared

@Suite("BSN and KvK numbers")
struct SubjectTests {
    @Test("the elfproef: weights 9 to 2 and -1, the sum divisible by 11")
    func elfproef() throws {
        #expect(try Subject(kind: .bsn, validating: "999993653").number == "999993653")
        #expect(try Subject(kind: .bsn, validating: "111222333").number == "111222333")
        #expect(throws: SubjectError.failsElfproef) { try Subject(kind: .bsn, validating: "123456789") }
        #expect(throws: SubjectError.failsElfproef) { try Subject(kind: .bsn, validating: "999993654") }
        #expect(throws: SubjectError.allZeros) { try Subject(kind: .bsn, validating: "000000000") }
        #expect(throws: SubjectError.notNineDigits) { try Subject(kind: .bsn, validating: "99999365") }
        #expect(throws: SubjectError.notNineDigits) { try Subject(kind: .bsn, validating: "99999365a") }
        #expect(throws: SubjectError.notNineDigits) { try Subject(kind: .bsn, validating: "٩٩٩٩٩٣٦٥٣") }
    }

    @Test("the BSN sector prefix is checked and stripped")
    func sectorPrefix() throws {
        #expect(try Subject(kind: .bsn, validating: "s00000000:999993653").number == "999993653")
        #expect(throws: SubjectError.unknownSector) { try Subject(kind: .bsn, validating: "s00000001:999993653") }
    }

    @Test("KvK numbers have eight digits")
    func kvk() throws {
        #expect(try Subject(kind: .kvk, validating: "12345678").number == "12345678")
        #expect(throws: SubjectError.notEightDigits) { try Subject(kind: .kvk, validating: "1234567") }
        #expect(throws: SubjectError.allZeros) { try Subject(kind: .kvk, validating: "00000000") }
    }

    @Test("a subject never shows a full BSN when printed; the keyed hash depends on the key")
    func masking() throws {
        let subject = try Subject(kind: .bsn, validating: "999993653")
        #expect(subject.masked == "******653")
        #expect("\(subject)" == "bsn:******653")
        let one = SubjectHasher(key: String(repeating: "a", count: 32)).hash(subject)
        let other = SubjectHasher(key: String(repeating: "b", count: 32)).hash(subject)
        #expect(one.count == 64 && one != other && !one.contains("999993653"))
        #expect(SubjectHasher(key: String(repeating: "a", count: 32)).hash(subject) == one)
        // An auditor recomputes it with any HMAC tool: HMAC-SHA256(key, "bsn:<number>") in lowercase hex
        // (python3 -c "import hmac; print(hmac.new(b'a'*32, b'bsn:999993653', 'sha256').hexdigest())").
        #expect(one == "5be928fcb1cb4cb8dca247212b5808a990192b97450d761d94d3497bb4b02374")
    }
}
