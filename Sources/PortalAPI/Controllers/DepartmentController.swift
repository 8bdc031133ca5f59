import Foundation
import Hummingbird
import Shared

/// `GET /api/v1/department`: the department the presented key belongs to, so an integrator can check a key.
struct DepartmentController {
    struct DepartmentView: Encodable {
        let id: String
        let name: String
        let createdAt: Date
    }

    let identity: IdentityServices

    func register(on routes: APIRoutes) {
        routes.department(.get, "/api/v1/department", self.show)
        routes.department(.put, "/api/v1/department/contact", self.putContact)
    }

    /// `PUT /api/v1/department/contact`: the general contact residents see for cases that name no handler.
    func putContact(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        var body = try await JSONBody.read(request, context: context)
        let contact = body.contact()
        try body.finish()
        guard let contact else { throw Problem.invalidInput([]) }
        try await self.identity.departments.setContact(
            of: context.department.id, contact, client: self.identity.database, logger: context.logger)
        return try JSONResponse.make(.ok, contact)
    }

    func show(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        let department = context.department
        return try JSONResponse.make(
            .ok,
            DepartmentView(id: department.id.uuidString.lowercased(), name: department.name, createdAt: department.createdAt)
        )
    }
}
