import { describe, it, expect } from "vitest";
import { describeUrl, redactSecrets } from "../../src/redact.js";

describe("redactSecrets", () => {
  it("masks the password in URL userinfo, for any scheme", () => {
    expect(redactSecrets("postgres://u:secret@h/db")).toBe("postgres://u:***@h/db");
    expect(redactSecrets("connect postgresql://app:p4ss@db.example:5432/old?sslmode=require failed")).toBe(
      "connect postgresql://app:***@db.example:5432/old?sslmode=require failed",
    );
    expect(redactSecrets("redis://:hunter2@cache:6379 and https://bob:pw@example.com/x")).toBe(
      "redis://:***@cache:6379 and https://bob:***@example.com/x",
    );
  });

  it("masks a password containing @ or : up to the host", () => {
    expect(redactSecrets("postgres://u:p@ss:w0rd@h:5432/db")).toBe("postgres://u:***@h:5432/db");
  });

  it("leaves URLs without a password alone", () => {
    for (const text of ["postgres://u@h:5432/db", "postgres://h:5432/db", "see https://example.com/a:b@c", "postgres:///db?host=/tmp"]) {
      expect(redactSecrets(text)).toBe(text);
    }
  });

  it("masks libpq keyword passwords, bare and quoted", () => {
    expect(redactSecrets("host=db user=app password=secret dbname=old")).toBe("host=db user=app password=*** dbname=old");
    expect(redactSecrets("host=db password = 'a b\\' c' dbname=old")).toBe("host=db password = '***' dbname=old");
    expect(redactSecrets("PGPASSWORD=s3cret psql")).toBe("PGPASSWORD=*** psql");
    expect(redactSecrets("postgres://u@h/db?password=x&sslmode=require")).toBe("postgres://u@h/db?password=***");
  });

  it("masks bearer tokens", () => {
    expect(redactSecrets("Authorization: Bearer abc.def-ghi_jkl")).toBe("Authorization: Bearer ***");
    expect(redactSecrets('{"authorization":"bearer xyz"}')).toBe('{"authorization":"bearer ***"}');
  });

  it("masks several secrets in one text, and is idempotent", () => {
    const text = 'error: source postgres://a:one@h1/db target postgres://b:two@h2/db (password=three, "Bearer four")';
    const once = redactSecrets(text);
    expect(once).toBe('error: source postgres://a:***@h1/db target postgres://b:***@h2/db (password=*** "Bearer ***")');
    expect(redactSecrets(once)).toBe(once);
  });

  it("returns text without secrets unchanged", () => {
    const text = "applied batch of 120 changes in 14 ms; lag 0.2 s";
    expect(redactSecrets(text)).toBe(text);
    expect(redactSecrets("")).toBe("");
  });

  it("stays linear on long adversarial input", () => {
    const inputs = [
      "://".repeat(300_000),
      "a://b:c".repeat(150_000),
      "password=".repeat(100_000),
      "Bearer ".repeat(150_000),
      `${"x".repeat(1_000_000)}@`,
      `postgres://u:${"p".repeat(1_000_000)}`,
      "passwor".repeat(150_000),
    ];
    for (const input of inputs) {
      const started = performance.now();
      redactSecrets(input);
      expect(performance.now() - started).toBeLessThan(1_000);
    }
  });
});

describe("describeUrl", () => {
  it("keeps user, host, port and database; drops password and query", () => {
    expect(describeUrl("postgres://app:secret@db.example:5432/old?sslmode=require&password=x")).toBe("postgres://app@db.example:5432/old");
    expect(describeUrl("postgresql://db.example/new")).toBe("postgresql://db.example/new");
    expect(describeUrl("postgres://app:pw@[::1]:6543/db")).toBe("postgres://app@[::1]:6543/db");
  });

  it("does not echo an unparsable URL", () => {
    expect(describeUrl("host=db password=secret")).toBe("(unparsable connection URL)");
    expect(describeUrl("")).toBe("(unparsable connection URL)");
  });
});
