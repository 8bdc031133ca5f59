/// A setting that is missing or malformed. Its description is the one line a process prints before it exits,
/// so it names the variable and what was expected, and never repeats a secret value.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    /// The environment variable at fault.
    public let variable: String
    /// What is wrong with it, in words an operator can act on.
    public let problem: String

    public init(variable: String, problem: String) {
        self.variable = variable
        self.problem = problem
    }

    public var description: String { "configuration error: \(self.variable) \(self.problem)" }
}
