/**
 * The pure half of the pooler check: which errors are a pooler's refusal (PgBouncer's and
 * Supavisor's words, also when wrapped), which host names are poolers by construction, and the
 * message a pooler's refusal becomes wherever it is raised.
 */
import { describe, expect, it } from "vitest";
import { PgferryError } from "../../src/errors.js";
import { classify } from "../../src/pipeline/errorPolicy.js";
import { hostHint, poolerError, poolerProblem, poolerRefusal, poolerSignature } from "../../src/sql/poolerRefusal.js";

/** What node-pg rejects with when the server (or a pooler) ends the startup with an ErrorResponse. */
function serverError(message: string, code = "08P01"): Error {
  return Object.assign(new Error(message), { code, severity: "FATAL" });
}

describe("poolerRefusal / poolerSignature", () => {
  it.each([
    ["unsupported startup parameter: options", "PgBouncer"],
    ["unsupported startup parameter: replication", "PgBouncer"],
    ["unsupported startup parameter in options: extra_float_digits", "PgBouncer"],
    ["unsupported options startup parameter: only '-c config=val' and '--config=val' are allowed", "PgBouncer"],
    ["no more connections allowed (max_client_conn)", "PgBouncer"],
    ["server login has been failing, cached error: connect failed (server_login_retry)", "PgBouncer"],
    ["query_wait_timeout", "PgBouncer"],
    ["client_login_timeout (server down)", "PgBouncer"],
    ["no such database: app", "PgBouncer"],
    ["pgbouncer cannot connect to server", "PgBouncer"],
    ["Tenant or user not found", "Supavisor"],
  ])("%s is %s's", (message, pooler) => {
    expect(poolerRefusal(serverError(message))).toEqual({ pooler, text: message });
  });

  it.each([
    'password authentication failed for user "app"',
    'database "app" does not exist',
    "sorry, too many clients already",
    "must be superuser or replication role to start walsender",
    "connect ECONNREFUSED 127.0.0.1:6432",
    "Connection terminated unexpectedly",
    "timeout exceeded when trying to connect",
  ])("%s is PostgreSQL's or the network's, not a pooler's", (message) => {
    expect(poolerSignature(serverError(message))).toBeUndefined();
  });

  it("finds the pooler's words inside an error that wraps them, and quotes them without the wrapper's", () => {
    const cause = serverError("unsupported startup parameter: options");
    const wrapped = new PgferryError("connection", `cannot reach the target database postgres://app@pgbouncer:6432/app: ${cause.message}`, { cause });
    expect(poolerSignature(wrapped)).toBe('PgBouncer refused a connection with "unsupported startup parameter: options"');
    expect(poolerSignature(new Error("the replication stream ended", { cause }), "the replication connection")).toBe(
      'PgBouncer refused the replication connection with "unsupported startup parameter: options"',
    );
  });

  it("does not take a host named pgbouncer for a pooler's refusal", () => {
    expect(poolerSignature(new Error("cannot reach the source database postgres://app@pgbouncer:6432/app: connect ECONNREFUSED"))).toBeUndefined();
    expect(poolerSignature(undefined)).toBeUndefined();
    expect(poolerSignature("unsupported startup parameter: options")).toBe('PgBouncer refused a connection with "unsupported startup parameter: options"');
  });
});

describe("hostHint", () => {
  it("knows Supavisor's hosts and names the direct host of the project in the user name", () => {
    expect(hostHint("postgresql://postgres.abcdefghijkl:secret@aws-0-eu-central-1.pooler.supabase.com:6543/postgres")).toEqual({
      finding: "aws-0-eu-central-1.pooler.supabase.com is Supabase's Supavisor pooler (port 6543: transaction mode)",
      fix: "Supabase's direct connection: host db.abcdefghijkl.supabase.co, port 5432, user postgres",
    });
    expect(hostHint("postgresql://postgres.abcdefghijkl@aws-0-eu-central-1.pooler.supabase.com:5432/postgres").finding).toBe(
      "aws-0-eu-central-1.pooler.supabase.com is Supabase's Supavisor pooler (port 5432: session mode)",
    );
    expect(hostHint("postgresql://app@aws-0-eu-central-1.pooler.supabase.com/postgres").fix).toBe(
      "Supabase's direct connection: host db.<project>.supabase.co, port 5432, user app",
    );
  });

  it("knows port 6543 of a Supabase database host, and that port 5432 is direct", () => {
    expect(hostHint("postgresql://postgres@db.abcdefghijkl.supabase.co:6543/postgres")).toEqual({
      finding: "port 6543 of db.abcdefghijkl.supabase.co is Supabase's transaction pooler",
      fix: "port 5432 of db.abcdefghijkl.supabase.co (Supabase's direct connection)",
    });
    expect(hostHint("postgresql://postgres@db.abcdefghijkl.supabase.co:5432/postgres").finding).toBeUndefined();
  });

  it("knows Neon's pooled endpoints and names the direct one", () => {
    expect(hostHint("postgresql://app@ep-cool-darkness-123456-pooler.eu-central-1.aws.neon.tech/neondb?sslmode=require")).toEqual({
      finding: "ep-cool-darkness-123456-pooler.eu-central-1.aws.neon.tech is a Neon pooled endpoint (PgBouncer)",
      fix: "the endpoint without -pooler: ep-cool-darkness-123456.eu-central-1.aws.neon.tech",
    });
    expect(hostHint("postgresql://app@ep-cool-darkness-123456.eu-central-1.aws.neon.tech/neondb").finding).toBeUndefined();
  });

  it("says nothing about other hosts, and gives the general fix", () => {
    for (const url of ["postgres://app@db.internal:5432/app", "postgres://app@127.0.0.1:6432/app", "not a url"]) {
      const hint = hostHint(url);
      expect(hint.finding).toBeUndefined();
      expect(hint.fix).toContain("the PostgreSQL server itself, not at PgBouncer, Supavisor or another pooler");
    }
  });
});

describe("poolerProblem / poolerError", () => {
  it("names the side, what was found, why a direct connection is needed and the fix, without the password", () => {
    const url = "postgres://app:s3cret@127.0.0.1:6432/app";
    const source = poolerProblem("source", url, ["one", "two"]);
    expect(source).toBe(
      "source.url: postgres://app@127.0.0.1:6432/app goes through a connection pooler: one; two. " +
        "Logical replication and the exported snapshot need a direct connection to PostgreSQL: point source.url at the PostgreSQL server itself, " +
        "not at PgBouncer, Supavisor or another pooler (Supabase: the direct host db.<project>.supabase.co on port 5432, not *.pooler.supabase.com or port 6543; " +
        "Neon: the endpoint host without -pooler)",
    );
    const target = poolerProblem("target", url, ["one"]);
    expect(target).toMatch(/^target\.url: postgres:\/\/app@127\.0\.0\.1:6432\/app goes through a connection pooler: one\. The target needs a direct, session-level connection/);
    expect(target).toContain("pgferry holds an advisory lock and session settings in its sessions for the whole run");
    expect(`${source}${target}`).not.toContain("s3cret");
  });

  it("turns a pooler's refusal into a preflight error that is not retried, and leaves other errors alone", () => {
    const url = "postgres://app@127.0.0.1:6432/app";
    const refusal = serverError("unsupported startup parameter: options");
    const error = poolerError("target", url, refusal);
    expect(error).toBeInstanceOf(PgferryError);
    expect(error).toMatchObject({ kind: "preflight", cause: refusal, hint: "change target.url to a direct connection to PostgreSQL" });
    expect(error?.message).toBe(poolerProblem("target", url, ['PgBouncer refused a connection with "unsupported startup parameter: options"']));
    // PgBouncer's SQLSTATE (08P01) would read as an outage, retried for as long as it lasts; its words say it is a pooler, which waiting does not cure.
    expect(classify(refusal)).toMatchObject({ disposition: "stop", kind: "preflight", reason: 'PgBouncer refused the connection ("unsupported startup parameter: options")' });
    expect(classify(error).disposition).toBe("stop");
    expect(poolerError("target", url, serverError('password authentication failed for user "app"', "28P01"))).toBeUndefined();
  });
});
