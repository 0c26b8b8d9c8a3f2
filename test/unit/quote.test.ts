import { describe, expect, it } from "vitest";
import { qualifiedName, quoteIdent, quoteLiteral } from "../../src/sql/quote.js";

describe("SQL quoting", () => {
  it("double-quotes every identifier, doubling embedded quotes, keeping case", () => {
    expect(quoteIdent("orders")).toBe('"orders"');
    expect(quoteIdent('Order "A"')).toBe('"Order ""A"""');
    expect(qualifiedName({ schema: "App", name: 'we"ird' })).toBe('"App"."we""ird"');
  });

  it("quotes a literal by doubling single quotes only (a backslash stays as it is)", () => {
    expect(quoteLiteral("")).toBe("''");
    expect(quoteLiteral("it's")).toBe("'it''s'");
    expect(quoteLiteral("back\\slash")).toBe("'back\\slash'");
    expect(quoteLiteral(quoteIdent("pub"))).toBe(`'"pub"'`);
  });
});
