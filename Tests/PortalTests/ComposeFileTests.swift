import Foundation
import Testing
import Yams

/// docker-compose.yml cannot run here (no Docker engine), so this keeps it honest: it must parse, and every portal
/// service must run an executable, a subcommand, a health path and settings that exist in the code.
@Suite("docker-compose.yml")
struct ComposeFileTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func read(_ path: String) throws -> String {
        try String(contentsOf: Self.root.appendingPathComponent(path), encoding: .utf8)
    }

    /// Every string literal in the Swift sources, to check settings and paths against.
    func sources() throws -> String {
        let enumerator = FileManager.default.enumerator(at: Self.root.appendingPathComponent("Sources"), includingPropertiesForKeys: nil)
        var text = ""
        while let file = enumerator?.nextObject() as? URL {
            if file.pathExtension == "swift" { text += try String(contentsOf: file, encoding: .utf8) }
        }
        return text
    }

    @Test("every portal service runs a real executable with settings and a health path the code knows")
    func servicesMatchTheCode() throws {
        let compose = try #require(try Yams.load(yaml: try self.read("docker-compose.yml")) as? [String: Any])
        let services = try #require(compose["services"] as? [String: Any])
        let sources = try self.sources()
        let package = try self.read("Package.swift")
        #expect(Set(services.keys).isSuperset(of: ["postgres", "api-1", "api-2", "sync-worker", "notifier", "migrate"]))

        var executables: Set<String> = []
        for (name, value) in services {
            let service = try #require(value as? [String: Any], "\(name)")
            guard let command = service["command"] as? [String], let binary = command.first, binary.hasPrefix("/app/") else { continue }
            let executable = String(binary.dropFirst("/app/".count))
            executables.insert(executable)
            #expect(package.contains(".executable(name: \"\(executable)\""), "\(name) runs \(executable), which is not a product")
            if executable == "PortalAPI" {
                let subcommand = try #require(command.dropFirst().first, "\(name) must name a PortalAPI subcommand")
                #expect(sources.contains("commandName: \"\(subcommand)\""), "\(name): PortalAPI has no subcommand \(subcommand)")
            }
            let environment = try #require(service["environment"] as? [String: Any], "\(name) has no environment")
            #expect(environment["PORTAL_DATABASE_URL"] != nil)
            for key in environment.keys {
                #expect(sources.contains("\"\(key)\""), "\(name) sets \(key), which no code reads")
            }
            if let healthcheck = service["healthcheck"] as? [String: Any], let test = healthcheck["test"] as? [String] {
                let url = try #require(test.last.flatMap(URL.init(string:)))
                #expect(sources.contains("\"\(url.path)\""), "\(name)'s health check calls \(url.path), which no route serves")
                #expect(
                    url.port.map(String.init) == environment["PORTAL_HTTP_PORT"] as? String,
                    "\(name) checks another port than it listens on")
            }
        }
        #expect(executables == ["PortalAPI", "SyncWorker", "Notifier"])
    }

    @Test("the image the services use is built from a Dockerfile that exists and builds every executable")
    func dockerfile() throws {
        let dockerfile = try self.read("deploy/Dockerfile")
        for executable in ["PortalAPI", "SyncWorker", "Notifier"] {
            #expect(dockerfile.contains("--product \(executable)"))
        }
        #expect(dockerfile.contains("USER portal"), "the image runs as a non-root user")
        #expect(dockerfile.contains("HEALTHCHECK"))
    }
}
