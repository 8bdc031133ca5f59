import ArgumentParser
import Shared

/// `PortalAPI serve`: runs the API until SIGTERM or SIGINT.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the HTTP API (the default). Refuses to start against a database schema that is behind."
    )

    func run() async throws {
        let configuration = EntryPoint.configuration(for: "PortalAPI", defaultHTTPPort: 8080)
        let settings: APISettings
        do {
            settings = try APISettings(portal: configuration)
        } catch {
            EntryPoint.fail("PortalAPI", error, status: 78)
        }
        let (logger, prometheus) = EntryPoint.bootstrap("PortalAPI", configuration: configuration)
        let process = PortalProcess(name: "PortalAPI", configuration: configuration, prometheus: prometheus, logger: logger)
        do {
            await EntryPoint.run("PortalAPI", try buildApplication(process, settings: settings), configuration: configuration)
        } catch {
            EntryPoint.fail("PortalAPI", error, status: 1)
        }
    }
}
