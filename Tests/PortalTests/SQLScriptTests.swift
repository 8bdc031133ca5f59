import Testing

@testable import Shared

@Suite("Splitting migration files into statements")
struct SQLScriptTests {
    @Test("semicolons inside literals, identifiers, dollar quotes and comments do not split")
    func hiddenSemicolons() {
        let script = """
            -- a comment; with a semicolon
            CREATE TABLE "odd;name" (note text DEFAULT 'a;b''c');
            /* block; /* nested; */ still comment; */
            CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;
            INSERT INTO t VALUES (E'it\\'s; fine', $$x;y$$);
            SELECT 1
            """
        let statements = SQLScript.statements(in: script)
        #expect(statements.count == 4)
        #expect(statements[0].hasSuffix(#"CREATE TABLE "odd;name" (note text DEFAULT 'a;b''c')"#))
        #expect(statements[1].hasSuffix("AS $body$ SELECT 1; $body$"))
        #expect(statements[1].hasPrefix("/* block; /* nested; */ still comment; */"))
        #expect(statements[2] == #"INSERT INTO t VALUES (E'it\'s; fine', $$x;y$$)"#)
        #expect(statements[3] == "SELECT 1")
    }

    @Test("comments and blank statements alone produce nothing")
    func onlyComments() {
        #expect(SQLScript.statements(in: "-- nothing here;\n ; ;\n/* nor; here */").isEmpty)
    }

    @Test("positional parameters are not dollar quotes")
    func parameters() {
        #expect(SQLScript.statements(in: "SELECT $1; SELECT $2") == ["SELECT $1", "SELECT $2"])
    }

    @Test("the shipped migrations split into statements that each end cleanly")
    func shippedMigrations() {
        #expect(!Migrator.bundledMigrations.isEmpty)
        for migration in Migrator.bundledMigrations {
            let statements = SQLScript.statements(in: migration.sql)
            #expect(!statements.isEmpty)
            #expect(statements.allSatisfy { !$0.hasSuffix(";") })
        }
    }
}
