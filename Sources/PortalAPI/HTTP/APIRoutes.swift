import HTTPTypes
import Hummingbird
import Synchronization

/// Who may call an endpoint.
enum Access: String, Sendable, CaseIterable {
    /// Anyone: the OpenAPI document and the login endpoints.
    case open
    /// Residents and businesses only (session or broker token).
    case resident
    /// Departments only (API key).
    case department
    /// A department's ZGW notification subscription (the credential `department connect-zgw` printed).
    case zgwSubscription
}

/// One endpoint of the API, as registered.
struct Route: Hashable, Sendable, CustomStringConvertible {
    let method: HTTPRequest.Method
    /// The path template, in the OpenAPI form: `/api/v1/cases/{id}`.
    let path: String
    let access: Access

    var description: String { "\(self.method) \(self.path) (\(self.access.rawValue))" }
}

/// The one way endpoints are added to the API. Each endpoint names its access level here, which puts it behind the
/// matching authenticator and context type, and is recorded in ``catalog``, which the tests hold against the
/// OpenAPI document and walk with every kind of credential.
struct APIRoutes {
    let router: Router<APIRequestContext>
    let catalog: RouteCatalog
    private let residents: RouterGroup<ResidentRequestContext>
    private let departments: RouterGroup<DepartmentRequestContext>
    private let subscriptions: RouterGroup<DepartmentRequestContext>

    init(router: Router<APIRequestContext>, identity: IdentityServices, catalog: RouteCatalog) {
        self.router = router
        self.catalog = catalog
        self.residents = router.group().add(middleware: ResidentAuthenticator(identity: identity))
            .group(context: ResidentRequestContext.self)
        self.departments = router.group().add(middleware: DepartmentAuthenticator(identity: identity))
            .group(context: DepartmentRequestContext.self)
        self.subscriptions = router.group().add(middleware: ZGWSubscriptionAuthenticator(identity: identity))
            .group(context: DepartmentRequestContext.self)
    }

    func open<Output: ResponseGenerator>(
        _ method: HTTPRequest.Method,
        _ path: String,
        _ handler: @escaping @Sendable (Request, APIRequestContext) async throws -> Output
    ) {
        self.catalog.add(Route(method: method, path: path, access: .open))
        self.router.on(RouterPath(path), method: method, use: handler)
    }

    func resident<Output: ResponseGenerator>(
        _ method: HTTPRequest.Method,
        _ path: String,
        _ handler: @escaping @Sendable (Request, ResidentRequestContext) async throws -> Output
    ) {
        self.catalog.add(Route(method: method, path: path, access: .resident))
        self.residents.on(RouterPath(path), method: method, use: handler)
    }

    func department<Output: ResponseGenerator>(
        _ method: HTTPRequest.Method,
        _ path: String,
        _ handler: @escaping @Sendable (Request, DepartmentRequestContext) async throws -> Output
    ) {
        self.catalog.add(Route(method: method, path: path, access: .department))
        self.departments.on(RouterPath(path), method: method, use: handler)
    }
}

extension APIRoutes {
    func zgwSubscription<Output: ResponseGenerator>(
        _ method: HTTPRequest.Method,
        _ path: String,
        _ handler: @escaping @Sendable (Request, DepartmentRequestContext) async throws -> Output
    ) {
        self.catalog.add(Route(method: method, path: path, access: .zgwSubscription))
        self.subscriptions.on(RouterPath(path), method: method, use: handler)
    }
}

/// The endpoints registered so far.
final class RouteCatalog: Sendable {
    private let storage = Mutex<[Route]>([])

    func add(_ route: Route) {
        self.storage.withLock { $0.append(route) }
    }

    var routes: [Route] { self.storage.withLock { $0 } }

    /// The methods registered for the routes whose template matches `path` (`{...}` matches any one segment).
    func methods(at path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        return self.routes.filter { route in
            let template = route.path.split(separator: "/", omittingEmptySubsequences: false)
            return template.count == segments.count
                && zip(template, segments).allSatisfy { $0.first == "{" && $0.last == "}" ? !$1.isEmpty : $0 == $1 }
        }.map(\.method)
    }
}
