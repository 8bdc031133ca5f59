import Foundation
import Testing
import Yams

/// The deployment files cannot run here (no Kubernetes, no systemd as init, no Prometheus), so this keeps them
/// honest: every manifest and unit must parse and refer to executables, subcommands, ports, health paths, settings and
/// metrics that exist in the code.
@Suite("Deployment files")
struct DeploymentFileTests {
    static let root = ComposeFileTests.root
    static let executables = ["PortalAPI", "SyncWorker", "Notifier"]
    /// Hummingbird's own HTTP metrics (`MetricsMiddleware`), as swift-prometheus names them.
    static let libraryMetrics: Set<String> = [
        "hb_requests", "hb_request_errors", "http_server_request_duration", "http_server_active_requests",
    ]

    let sources: String
    let package: String

    init() throws {
        self.sources = try ComposeFileTests().sources()
        self.package = try ComposeFileTests().read("Package.swift")
    }

    func files(_ folder: String, _ extensions: Set<String>) throws -> [URL] {
        let url = Self.root.appendingPathComponent(folder)
        return try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)
            .filter { extensions.contains($0.pathExtension) }.sorted { $0.path < $1.path }
    }

    /// Checks a container's command: a real executable and, for PortalAPI, a real subcommand.
    func checkCommand(_ command: [String], _ name: String) {
        guard let binary = command.first else {
            Issue.record("\(name) has no command")
            return
        }
        let executable = URL(fileURLWithPath: binary).lastPathComponent
        #expect(Self.executables.contains(executable), "\(name) runs \(binary), which is not one of our executables")
        #expect(self.package.contains(".executable(name: \"\(executable)\""), "\(name): \(executable) is not a product")
        if executable == "PortalAPI", let subcommand = command.dropFirst().first {
            let known = self.sources.contains("commandName: \"\(subcommand)\"")
            #expect(known, "\(name): PortalAPI has no subcommand \(subcommand)")
        }
    }

    func checkSetting(_ key: String, _ name: String) {
        let known = self.sources.contains("\"\(key)\"")
        #expect(known, "\(name) sets \(key), which no code reads")
    }

    /// The metric names in a PromQL expression (histogram series without their suffix) must be ones the code exports.
    func checkMetrics(_ expression: String, _ name: String) throws {
        let pattern = try NSRegularExpression(pattern: #"\b(portal_[a-z_]+|hb_[a-z_]+|http_server_[a-z_]+)\b"#)
        let range = NSRange(expression.startIndex..., in: expression)
        for match in pattern.matches(in: expression, range: range) {
            var metric = String(expression[Range(match.range, in: expression)!])
            for suffix in ["_bucket", "_sum", "_count"] where metric.hasSuffix(suffix) && !self.sources.contains("\"\(metric)\"") {
                metric = String(metric.dropLast(suffix.count))
            }
            let known = Self.libraryMetrics.contains(metric) || self.sources.contains("\"\(metric)\"")
            #expect(known, "\(name) uses the metric \(metric), which nothing exports")
        }
    }

    @Test("Kubernetes: every container runs a real executable, listens where it says, probes real health paths, reads real settings")
    func kubernetes() throws {
        var kinds: [String: Int] = [:]
        var configured: Set<String> = []
        for file in try self.files("deploy/kubernetes", ["yaml", "yml"]) {
            for document in try Yams.load_all(yaml: String(contentsOf: file, encoding: .utf8)) {
                guard let resource = document as? [String: Any], let kind = resource["kind"] as? String else { continue }
                let name = "\(file.lastPathComponent): \(kind)"
                kinds[kind, default: 0] += 1
                if kind == "ConfigMap" || kind == "Secret" {
                    for key in ((resource["data"] ?? resource["stringData"]) as? [String: Any] ?? [:]).keys {
                        self.checkSetting(key, name)
                        configured.insert(key)
                    }
                }
                var spec = resource["spec"] as? [String: Any]
                if kind == "Deployment" || kind == "Job" { spec = (spec?["template"] as? [String: Any])?["spec"] as? [String: Any] }
                for container in spec?["containers"] as? [[String: Any]] ?? [] {
                    let name = "\(name) \(container["name"] as? String ?? "?")"
                    self.checkCommand(container["command"] as? [String] ?? [], name)
                    var environment: [String: String] = [:]
                    for variable in container["env"] as? [[String: Any]] ?? [] {
                        guard let key = variable["name"] as? String else { continue }
                        self.checkSetting(key, name)
                        environment[key] = variable["value"] as? String
                    }
                    let ports = (container["ports"] as? [[String: Any]] ?? []).compactMap { $0["containerPort"] as? Int }
                    if kind == "Deployment" {
                        let port = try #require(environment["PORTAL_HTTP_PORT"].flatMap(Int.init), "\(name) sets no PORTAL_HTTP_PORT")
                        #expect(ports == [port], "\(name) listens on \(port) but declares \(ports)")
                        for probe in ["readinessProbe", "livenessProbe"] {
                            let get = try #require(
                                (container[probe] as? [String: Any])?["httpGet"] as? [String: Any], "\(name) has no \(probe)")
                            let path = try #require(get["path"] as? String)
                            let served = self.sources.contains("\"\(path)\"")
                            #expect(served, "\(name)'s \(probe) calls \(path), which no route serves")
                            #expect(
                                get["port"] as? Int == port || get["port"] as? String == "http", "\(name)'s \(probe) checks another port")
                        }
                    }
                }
            }
        }
        #expect(kinds["Deployment"] == 3 && kinds["Job"] == 1 && (kinds["PodDisruptionBudget"] ?? 0) >= 1, "\(kinds)")
        #expect(configured.isSuperset(of: ["PORTAL_DATABASE_URL", "PORTAL_AUDIT_KEY", "PORTAL_SMTP_URL", "PORTAL_MAIL_FROM"]))
    }

    @Test("systemd: every unit starts a real executable and subcommand; the example environment holds only real settings")
    func systemd() throws {
        let units = try self.files("deploy/systemd", ["service"])
        #expect(units.count >= 4)
        for unit in units {
            let text = try String(contentsOf: unit, encoding: .utf8)
            let exec = try #require(text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") }, "\(unit.lastPathComponent)")
            self.checkCommand(exec.dropFirst("ExecStart=".count).split(separator: " ").map(String.init), unit.lastPathComponent)
        }
        for line in try String(contentsOf: Self.root.appendingPathComponent("deploy/systemd/portal.env.example"), encoding: .utf8)
            .split(separator: "\n")
        {
            let setting = line.trimmingCharacters(in: CharacterSet(charactersIn: "# "))
            guard let key = setting.split(separator: "=").first, key.hasPrefix("PORTAL_"), setting.contains("=") else { continue }
            self.checkSetting(String(key), "portal.env.example")
        }
    }

    @Test("Prometheus alerts and the Grafana dashboard use only metrics the code exports")
    func monitoring() throws {
        let rules = try #require(
            try Yams.load(yaml: String(contentsOf: Self.root.appendingPathComponent("deploy/prometheus/alerts.yml"), encoding: .utf8))
                as? [String: Any])
        var alerts = 0
        let operations = try ComposeFileTests().read("docs/OPERATIONS.md")
        for group in rules["groups"] as? [[String: Any]] ?? [] {
            for rule in group["rules"] as? [[String: Any]] ?? [] {
                let name = try #require(rule["alert"] as? String)
                alerts += 1
                try self.checkMetrics(try #require(rule["expr"] as? String), name)
                #expect(operations.contains("### Alert: \(name)\n"), "docs/OPERATIONS.md does not say what to do about \(name)")
            }
        }
        #expect(alerts >= 10)
        let dashboard = try ComposeFileTests().read("deploy/grafana/portal-dashboard.json")
        let object = try JSONSerialization.jsonObject(with: Data(dashboard.utf8)) as? [String: Any]
        #expect(object?["panels"] != nil)
        try self.checkMetrics(dashboard, "the dashboard")
        #expect(dashboard.contains("portal_jobs") && dashboard.contains("hb_requests"))
    }
}
