import Foundation
import Shared

/// `Notifier failed`: the mails that were not delivered, newest first: refused by the relay, given up after the last
/// attempt, or left unsent because their job ended. Addresses are masked, also where the relay's reply repeats them.
enum FailedDeliveries {
    static func run() async -> Never {
        let configuration = EntryPoint.configuration(for: "Notifier failed", defaultHTTPPort: 8082)
        let (logger, prometheus) = EntryPoint.bootstrap("Notifier failed", configuration: configuration)
        let process = PortalProcess(name: "Notifier", configuration: configuration, prometheus: prometheus, logger: logger)
        do {
            let (failed, stranded) = try await process.database.whileRunning {
                try await process.migrator.requireCurrent()
                let store = MailDeliveryStore(client: process.database, messageIDDomain: "", logger: logger)
                return (try await store.failed(), try await store.stranded())
            }
            print(self.table(failed), terminator: "")
            if stranded > 0 {
                print(
                    "\(stranded) notifications wait without a job (cancelled, or dead before a mail was prepared): docs/MAIL.md, Operators")
            }
            exit(0)
        } catch {
            EntryPoint.fail("Notifier failed", error, status: 1)
        }
    }

    static func table(_ failed: [FailedDelivery]) -> String {
        guard !failed.isEmpty else { return "No failed deliveries.\n" }
        let format = ISO8601DateFormatter()
        var output = "delivery\tkind\tcreated\taddress\tattempts\tlast reply\n"
        for delivery in failed {
            let reply = MailAddress.redacted((delivery.lastReply ?? "-").replacingOccurrences(of: "\n", with: " "))
            output +=
                "\(delivery.id)\t\(delivery.kind.rawValue)\t\(format.string(from: delivery.createdAt))\t\(delivery.maskedAddress)\t\(delivery.attempts)\t\(reply)\n"
        }
        return output
    }
}
