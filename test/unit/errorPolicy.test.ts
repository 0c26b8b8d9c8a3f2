/**
 * The error policy's table: each SQLSTATE, Node.js error code and message it knows → its class
 * (outage: retried for as long as it lasts; transient / rejected: retried up to
 * apply.retry.maxAttempts; privilege / fatal: stop), the kind it is reported as, and for 42501 the
 * missing grant in the hint.
 */
import pg from "pg";
import { describe, expect, it } from "vitest";
import { ApplyError } from "../../src/apply/applier.js";
import { PgferryError, tagEndpoint, type ErrorKind } from "../../src/errors.js";
import { backoffMs, classify, privilegeError, roleOf, RULES, type FailureClass } from "../../src/pipeline/errorPolicy.js";

/** A server error as node-postgres raises it. */
function serverError(code: string, message: string): pg.DatabaseError {
  const error = new pg.DatabaseError(message, message.length, "error");
  error.code = code;
  return error;
}

/** A socket or DNS error as Node.js raises it. */
function systemError(code: string, syscall: string, message = `${syscall} ${code}`): Error {
  return Object.assign(new Error(message), { code, syscall });
}

function applyError(code: string, message: string, table = "app.accounts"): ApplyError {
  return new ApplyError({ table, op: "insert", rows: 1, sqlstate: code, constraint: undefined }, serverError(code, message));
}

const roles = { source: "pgferry_source", target: "pgferry_target" };

describe("the classification table", () => {
  const cases: [string, unknown, FailureClass, ErrorKind][] = [
    // Outages: retried for as long as they last, reported as connection errors.
    ["08006 connection failure", serverError("08006", "connection failure"), "outage", "connection"],
    ["08001 unable to connect", serverError("08001", "could not connect"), "outage", "connection"],
    ["08P01 protocol violation (class 08)", serverError("08P01", "protocol violation"), "outage", "connection"],
    ["57P01 admin shutdown", serverError("57P01", "terminating connection due to administrator command"), "outage", "connection"],
    ["57P02 crash shutdown", serverError("57P02", "terminating connection because of crash of another server process"), "outage", "connection"],
    ["57P03 cannot connect now", serverError("57P03", "the database system is starting up"), "outage", "connection"],
    ["57P05 idle session timeout", serverError("57P05", "terminating connection due to idle-session timeout"), "outage", "connection"],
    ["53300 too many connections", serverError("53300", "sorry, too many clients already"), "outage", "connection"],
    ["25006 read-only (standby or failover)", serverError("25006", "cannot execute INSERT in a read-only transaction"), "outage", "connection"],
    ["ECONNREFUSED", systemError("ECONNREFUSED", "connect", "connect ECONNREFUSED 127.0.0.1:5432"), "outage", "connection"],
    ["ECONNRESET", systemError("ECONNRESET", "read"), "outage", "connection"],
    ["ECONNABORTED", systemError("ECONNABORTED", "read"), "outage", "connection"],
    ["EPIPE", systemError("EPIPE", "write"), "outage", "connection"],
    ["ETIMEDOUT", systemError("ETIMEDOUT", "connect"), "outage", "connection"],
    ["EHOSTUNREACH", systemError("EHOSTUNREACH", "connect"), "outage", "connection"],
    ["EHOSTDOWN", systemError("EHOSTDOWN", "connect"), "outage", "connection"],
    ["ENETUNREACH", systemError("ENETUNREACH", "connect"), "outage", "connection"],
    ["ENETDOWN", systemError("ENETDOWN", "connect"), "outage", "connection"],
    ["EAI_AGAIN (DNS)", systemError("EAI_AGAIN", "getaddrinfo", "getaddrinfo EAI_AGAIN db.internal"), "outage", "connection"],
    ["ENOTFOUND (DNS)", systemError("ENOTFOUND", "getaddrinfo", "getaddrinfo ENOTFOUND db.internal"), "outage", "connection"],
    ["ENOENT connecting to a unix socket", systemError("ENOENT", "connect", "connect ENOENT /run/postgresql/.s.PGSQL.5432"), "outage", "connection"],
    ["Connection terminated unexpectedly", new Error("Connection terminated unexpectedly"), "outage", "connection"],
    ["Connection terminated due to connection timeout", new Error("Connection terminated due to connection timeout"), "outage", "connection"],
    ["pool connect timeout", new Error("timeout exceeded when trying to connect"), "outage", "connection"],
    ["not queryable after a connection error", new Error("Client has encountered a connection error and is not queryable"), "outage", "connection"],
    ["the database system is shutting down (no code)", new Error("the database system is shutting down"), "outage", "connection"],
    ["a lost connection wrapped in another error", new Error("stream ended", { cause: systemError("ECONNRESET", "read") }), "outage", "connection"],
    ["AggregateError of refused addresses", Object.assign(new AggregateError([systemError("ECONNREFUSED", "connect"), systemError("ECONNREFUSED", "connect")], "connect failed")), "outage", "connection"],
    ["PgferryError connection", new PgferryError("connection", "lost the target connection holding the pipeline lock"), "outage", "connection"],
    ["ApplyError 25006 (target turned read-only)", applyError("25006", "cannot execute INSERT in a read-only transaction"), "outage", "connection"],

    // Transient: retried up to apply.retry.maxAttempts.
    ["40001 serialization failure", serverError("40001", "could not serialize access"), "transient", "connection"],
    ["40P01 deadlock", serverError("40P01", "deadlock detected"), "transient", "connection"],
    ["55006 slot still active", serverError("55006", 'replication slot "pgferry" is active for PID 42'), "transient", "connection"],
    ["57014 statement cancelled", serverError("57014", "canceling statement due to statement timeout"), "transient", "connection"],
    ["58000 system error", serverError("58000", "system error"), "transient", "connection"],
    ["ApplyError 40P01 (deadlock while applying)", applyError("40P01", "deadlock detected"), "transient", "apply"],

    // Rejected: apply.onError decides.
    ["ApplyError 23505", applyError("23505", 'duplicate key value violates unique constraint "accounts_email_key"'), "rejected", "apply"],
    ["ApplyError 22P02", applyError("22P02", 'invalid input syntax for type integer: "x"'), "rejected", "apply"],

    // Privilege: stops with the grant.
    ["42501", serverError("42501", "permission denied for table accounts"), "privilege", "privilege"],
    ["ApplyError 42501", applyError("42501", "permission denied for sequence x_id_seq"), "privilege", "privilege"],
    ["mapping error caused by 42501", new PgferryError("mapping", "the source rejected the mapping's SQL", { cause: serverError("42501", "permission denied for function f") }), "privilege", "privilege"],
    ["PgferryError privilege", new PgferryError("privilege", "lacks a grant", { hint: "GRANT ..." }), "privilege", "privilege"],

    // Fatal: stops.
    ["28P01 wrong password", serverError("28P01", 'password authentication failed for user "x"'), "fatal", "apply"],
    ["3D000 unknown database", serverError("3D000", 'database "nope" does not exist'), "fatal", "apply"],
    ["23505 outside an apply", serverError("23505", "duplicate key value"), "fatal", "apply"],
    ["TLS certificate that does not verify", Object.assign(new Error("unable to verify the first certificate"), { code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" }), "fatal", "internal"],
    ["TLS host mismatch", Object.assign(new Error("Hostname/IP does not match certificate's altnames"), { code: "ERR_TLS_CERT_ALTNAME_INVALID" }), "fatal", "internal"],
    ["ENOENT opening a file (not a socket)", systemError("ENOENT", "open", "ENOENT: no such file or directory, open '/etc/pgferry/ca.pem'"), "fatal", "internal"],
    ["a plain bug", new TypeError("cannot read properties of undefined"), "fatal", "internal"],
    ["mapping error", new PgferryError("mapping", "tables[0]: column gone", { cause: serverError("42703", "column x does not exist") }), "fatal", "mapping"],
    ["preflight error", new PgferryError("preflight", "wal_level is replica"), "fatal", "preflight"],
    ["state error", new PgferryError("state", "slot is gone"), "fatal", "state"],
    ["protocol error", new PgferryError("protocol", "bad message"), "fatal", "protocol"],
    ["config error", new PgferryError("config", "bad key"), "fatal", "config"],
    ["internal error", new PgferryError("internal", "bug"), "fatal", "internal"],
  ];

  it.each(cases)("%s → %s (kind %s)", (_name, error, expectedClass, expectedKind) => {
    const verdict = classify(error, { roles });
    expect(verdict.class).toBe(expectedClass);
    expect(verdict.kind).toBe(expectedKind);
    expect(verdict.disposition).toBe(["outage", "transient", "rejected"].includes(expectedClass) ? "retry" : "stop");
    // Only transient failures and refused changes spend apply.retry.maxAttempts; an outage never does.
    expect(verdict.bounded).toBe(expectedClass === "transient" || expectedClass === "rejected");
  });

  it("asks for a retry in source order only after a unique or exclusion violation while applying", () => {
    expect(classify(applyError("23505", 'duplicate key value violates unique constraint "accounts_email_key"')).orderedRetry).toBe(true);
    expect(classify(applyError("23P01", 'conflicting key value violates exclusion constraint "no_overlap"')).orderedRetry).toBe(true);
    for (const code of ["22P02", "23502", "23503", "40P01"]) expect(classify(applyError(code, "refused")).orderedRetry, code).toBeUndefined();
    // A violation outside the apply path (a bare server error) is no reordering of a batch.
    expect(classify(serverError("23505", "duplicate key")).orderedRetry).toBeUndefined();
  });

  it("covers every row of the table with a case above", () => {
    for (const rule of RULES) {
      const covered = cases.some(([, error]) => {
        const e = error as { code?: string; syscall?: string; message?: string; cause?: { code?: string } };
        const codes = [e.code, e.cause?.code];
        if (rule.code !== undefined) return codes.includes(rule.code) && (rule.syscall === undefined || e.syscall === rule.syscall);
        if (rule.sqlstateClass !== undefined) return codes.some((c) => c?.startsWith(rule.sqlstateClass!));
        return rule.message!.test(e.message ?? "");
      });
      expect(covered, `rule ${JSON.stringify(rule, (_k, v: unknown) => (v instanceof RegExp ? v.source : v))}`).toBe(true);
    }
  });

  it("gives every row a reason", () => {
    for (const rule of RULES) expect(rule.reason.length).toBeGreaterThan(3);
    expect(classify(serverError("57P03", "the database system is starting up")).reason).toBe("cannot connect now (the server is starting, stopping or in recovery)");
    expect(classify(systemError("ECONNREFUSED", "connect")).reason).toBe("connection refused (nothing listens: the server is down or restarting)");
  });
});

describe("privilege errors (42501)", () => {
  it("name the missing sequence grant for the target's role when applying", () => {
    const verdict = classify(applyError("42501", "permission denied for sequence x_id_seq"), { roles });
    expect(verdict).toMatchObject({ class: "privilege", disposition: "stop", kind: "privilege", side: "target" });
    expect(verdict.hint).toBe(
      "run on the target database: GRANT USAGE ON SEQUENCE x_id_seq TO pgferry_target; docs/privileges.sql lists every privilege pgferry needs; then start pgferry again (it resumes from its checkpoint)",
    );
  });

  it("name the table grants pgferry needs on the target", () => {
    expect(classify(applyError("42501", "permission denied for table accounts"), { roles }).hint).toContain(
      "run on the target database: GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLE accounts TO pgferry_target;",
    );
  });

  it("offer both sides' table grants when it is not known which database refused", () => {
    const hint = classify(serverError("42501", "permission denied for table accounts"), { roles }).hint;
    expect(hint).toContain("the database that refused it (pgferry's role is pgferry_source on the source, pgferry_target on the target)");
    expect(hint).toContain("GRANT SELECT ON TABLE accounts TO <role> (on the source) or GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLE accounts TO <role> (on the target)");
  });

  it("name the side an error of the pipeline's pools is tagged with", () => {
    const error = tagEndpoint(serverError("42501", "permission denied for table accounts"), "source", "postgres://pgferry_source:secret@db/app");
    const verdict = classify(error, { roles });
    expect(verdict.side).toBe("source");
    expect(verdict.hint).toContain("run on the source database: GRANT SELECT ON TABLE accounts TO pgferry_source;");
  });

  it("use the role when both sides log in as the same one", () => {
    const hint = classify(serverError("42501", "permission denied for sequence x_id_seq"), { roles: { source: "ferry", target: "ferry" } }).hint;
    expect(hint).toContain("GRANT USAGE ON SEQUENCE x_id_seq TO ferry;");
  });

  it.each([
    ["permission denied for schema app", { side: "target" as const }, "run on the target database: GRANT USAGE ON SCHEMA app TO pgferry_target;"],
    ["permission denied for database appdb", { side: "source" as const }, "run on the source database: GRANT CONNECT ON DATABASE appdb TO pgferry_source;"],
    ["permission denied for function score", { side: "source" as const }, "run on the source database: GRANT EXECUTE ON FUNCTION score TO pgferry_source;"],
    ['permission denied to set parameter "session_replication_role"', { side: "target" as const }, "run on the target database: GRANT SET ON PARAMETER session_replication_role TO pgferry_target;"],
    ["must be superuser or replication role to start walsender", {}, "run on the source database: ALTER ROLE pgferry_source REPLICATION;"],
    ["permission denied to start WAL sender", {}, "run on the source database: ALTER ROLE pgferry_source REPLICATION;"],
    ["must be superuser or replication role to use replication slots", {}, "run on the source database: ALTER ROLE pgferry_source REPLICATION;"],
    ["permission denied for table Order Items", { side: "source" as const }, 'run on the source database: GRANT SELECT ON TABLE "Order Items" TO pgferry_source;'],
    ["must be owner of publication pgferry", { side: "source" as const }, "only the owner of publication pgferry may do this on the source database: do it as the owner"],
    ["permission denied to create role", { side: "target" as const }, "grant pgferry_target the privilege the message names on the target database;"],
  ])("%s → %s", (message, context, expected) => {
    const verdict = classify(serverError("42501", message), { roles, ...context });
    expect(verdict.class).toBe("privilege");
    expect(verdict.hint).toContain(expected);
    expect(verdict.hint).toContain("docs/privileges.sql");
  });

  it("say <role> when the URL names no user", () => {
    expect(classify(applyError("42501", "permission denied for sequence s"), { roles: {} }).hint).toContain("GRANT USAGE ON SEQUENCE s TO <role>;");
  });

  it("become a PgferryError of kind privilege with the hint, wrapping the original", () => {
    const original = applyError("42501", "permission denied for sequence x_id_seq");
    const verdict = classify(original, { roles });
    const error = privilegeError(original, verdict);
    expect(error).toBeInstanceOf(PgferryError);
    expect(error.kind).toBe("privilege");
    expect(error.hint).toBe(verdict.hint);
    expect(error.cause).toBe(original);
    expect(error.message).toBe(`pgferry's role lacks a privilege on the target database: ${original.message}`);
    // Classified again (e.g. by a caller up the stack), it stays what it is.
    expect(classify(error)).toMatchObject({ class: "privilege", kind: "privilege", hint: verdict.hint });
    expect(privilegeError(error, verdict)).toBe(error);
  });
});

describe("backoffMs", () => {
  it("doubles from the initial delay, is capped at the maximum, and jitters within the upper half", () => {
    expect(backoffMs(1, 100, 1000, () => 1)).toBe(100);
    expect(backoffMs(2, 100, 1000, () => 1)).toBe(200);
    expect(backoffMs(4, 100, 1000, () => 1)).toBe(800);
    expect(backoffMs(5, 100, 1000, () => 1)).toBe(1000);
    expect(backoffMs(10_000, 100, 1000, () => 1)).toBe(1000);
    expect(backoffMs(10_000, 100, 1000, () => 0)).toBe(500);
    expect(backoffMs(3, 100, 1000, () => 0)).toBe(200);
  });
});

describe("roleOf", () => {
  it("reads the user of a connection URL", () => {
    expect(roleOf("postgres://pgferry_target:secret@db:5432/app")).toBe("pgferry_target");
    expect(roleOf("postgresql://we%40ird@db/app")).toBe("we@ird");
    expect(roleOf("postgres://db/app?user=ferry")).toBe("ferry");
    expect(roleOf("postgres://db/app")).toBeUndefined();
    expect(roleOf("not a url")).toBeUndefined();
  });
});
