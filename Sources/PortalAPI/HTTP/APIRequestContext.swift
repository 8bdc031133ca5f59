import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Shared

/// The context of every API request: the trace id that ties log lines and audit records to it, and (once an
/// authenticator has run) who is calling.
struct APIRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The W3C trace id from an incoming `traceparent` header, or a new one.
    var traceID: String
    /// Set by ``ResidentAuthenticator`` or ``DepartmentAuthenticator``; read it through ``ResidentRequestContext``
    /// or ``DepartmentRequestContext``, where it is not optional.
    var caller: Caller?
    /// The connection, so an endpoint can stop reading a body it refused (an upload over the limit).
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.traceID = TraceContext.newTraceID()
        self.caller = nil
        self.channel = source.channel
    }
}

/// Who is calling an authenticated endpoint.
enum Caller: Sendable {
    case resident(ResidentCaller)
    case department(Department)
}

/// A resident or business, with how they proved it.
struct ResidentCaller: Sendable {
    enum Credential: Sendable {
        /// A browser session (cookie); state-changing requests carry its CSRF token.
        case session(token: String, ActiveSession)
        /// An access token from the broker, presented by a trusted frontend server.
        case bearerToken
    }

    let resident: Resident
    let credential: Credential
}

/// The context of a resident endpoint: the resident is not optional, so a handler cannot forget to check it.
struct ResidentRequestContext: ChildRequestContext {
    var coreContext: CoreRequestContextStorage
    let traceID: String
    let caller: ResidentCaller
    let channel: any Channel
    var resident: Resident { self.caller.resident }

    init(context: APIRequestContext) throws {
        guard case .resident(let caller) = context.caller else { throw Problem.unauthorized() }
        self.coreContext = context.coreContext
        self.traceID = context.traceID
        self.caller = caller
        self.channel = context.channel
    }
}

/// The context of a department endpoint: the department is not optional.
struct DepartmentRequestContext: ChildRequestContext {
    var coreContext: CoreRequestContextStorage
    let traceID: String
    let department: Department
    let channel: any Channel

    init(context: APIRequestContext) throws {
        guard case .department(let department) = context.caller else { throw Problem.unauthorized() }
        self.coreContext = context.coreContext
        self.traceID = context.traceID
        self.department = department
        self.channel = context.channel
    }
}
