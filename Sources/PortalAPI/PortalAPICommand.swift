import ArgumentParser

/// `PortalAPI`: the HTTP API, and the operator commands. Without a subcommand it serves the API.
@main
struct PortalAPICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "PortalAPI",
        abstract: "The resident portal's HTTP API and operator commands.",
        discussion: "Settings come from PORTAL_* environment variables; see docs/CONFIGURATION.md.",
        subcommands: [
            ServeCommand.self, MigrateCommand.self, DepartmentCommand.self, JobsCommand.self, MailCommand.self, StatsCommand.self,
            TemplatesCommand.self, PrivacyCommand.self,
        ],
        defaultSubcommand: ServeCommand.self
    )
}
