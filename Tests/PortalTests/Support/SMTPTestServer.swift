import Foundation
import Shared

/// A real SMTP server (aiosmtpd, `smtp_server.py`) as a child process, with a certificate made for the test run.
final class SMTPTestServer: Sendable {
    enum Mode: String { case plain, starttls, implicit }

    let port: Int
    let folder: URL
    private let process: Process
    private let input: Pipe

    /// The certificate and key every test server uses, made once per test process (`openssl req`).
    static let certificate: Result<(certificate: String, key: String), any Error> = Result {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("portal-smtp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let (certificate, key) = (folder.appendingPathComponent("cert.pem").path, folder.appendingPathComponent("key.pem").path)
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", certificate,
        ]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        guard openssl.terminationStatus == 0 else { throw TestSetupError("openssl could not make a test certificate") }
        return (certificate, key)
    }

    /// `refuse` maps an address to the reply code for it; `refuseTimes` limits how often (then it is accepted).
    init(
        _ mode: Mode, port: Int? = nil, user: String? = nil, password: String? = nil, refuse: [String: Int] = [:],
        refuseTimes: [String: Int] = [:]
    ) async throws {
        self.port = try port ?? freePort()
        self.folder = FileManager.default.temporaryDirectory.appendingPathComponent("portal-mail-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.folder, withIntermediateDirectories: true)
        let (certificate, key) = try Self.certificate.get()
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("smtp_server.py").path
        var arguments = [
            "python3", script, "--port", "\(self.port)", "--mode", mode.rawValue, "--cert", certificate, "--key", key,
            "--out", self.folder.path,
        ]
        if let user, let password { arguments += ["--user", user, "--password", password] }
        for (address, code) in refuse {
            arguments += ["--refuse", "\(address):\(code)" + (refuseTimes[address].map { ":\($0)" } ?? "")]
        }
        self.process = Process()
        self.process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        self.process.arguments = arguments
        self.input = Pipe()
        let output = Pipe()
        self.process.standardInput = self.input
        self.process.standardOutput = output
        try self.process.run()
        // Ready when it says so (it prints once it listens), or failed when its output ends first.
        let ready = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var seen = Data()
                while true {
                    let chunk = output.fileHandleForReading.availableData
                    if chunk.isEmpty { return continuation.resume(returning: false) }
                    seen += chunk
                    if String(decoding: seen, as: UTF8.self).contains("READY") { return continuation.resume(returning: true) }
                }
            }
        }
        guard ready else { throw TestSetupError("the SMTP test server did not start (is aiosmtpd installed?)") }
    }

    /// The accepted messages, oldest first: the raw message and its envelope.
    func messages() throws -> [(message: String, envelope: [String: JSONValue])] {
        let names = try FileManager.default.contentsOfDirectory(atPath: self.folder.path).filter { $0.hasSuffix(".eml") }
        return try names.sorted { Int($0.dropLast(4)) ?? 0 < Int($1.dropLast(4)) ?? 0 }.map { name in
            let message = try String(contentsOf: self.folder.appendingPathComponent(name), encoding: .utf8)
            let json = self.folder.appendingPathComponent(String(name.dropLast(4)) + ".json")
            let envelope = try JSONDecoder().decode([String: JSONValue].self, from: Data(contentsOf: json))
            return (message, envelope)
        }
    }

    /// The sessions that ended with QUIT, by client address.
    func quits() -> [String] {
        let log = (try? String(contentsOf: self.folder.appendingPathComponent("quits.log"), encoding: .utf8)) ?? ""
        return log.split(separator: "\n").map(String.init)
    }

    /// Stops the server (it ends when its standard input closes) and waits for it.
    func stop() {
        try? self.input.fileHandleForWriting.close()
        self.process.waitUntilExit()
    }
}
