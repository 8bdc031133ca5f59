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

    func register(on routes: APIRoutes) {
        routes.department(.get, "/api/v1/department", self.show)
    }

    func show(_ request: Request, context: DepartmentRequestContext) async throws -> Response {
        let department = context.department
        return try JSONResponse.make(
            .ok,
            DepartmentView(id: department.id.uuidString.lowercased(), name: department.name, createdAt: department.createdAt)
        )
    }
}
