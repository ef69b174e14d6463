// Unkey's own TypeScript client (@unkey/api), unmodified, against keygate's Unkey surface:
// createKey, then verifyKey, VALID and then NOT_FOUND once deleted. Run by
// crates/keygate/tests/unkey.rs with KEYGATE_URL and KEYGATE_TOKEN (a root key holding `*`).
import { Unkey } from "@unkey/api";

const unkey = new Unkey({ rootKey: process.env.KEYGATE_TOKEN, serverURL: process.env.KEYGATE_URL });

function expect(what, got, wanted) {
  if (JSON.stringify(got) !== JSON.stringify(wanted)) {
    throw new Error(`${what}: expected ${JSON.stringify(wanted)}, got ${JSON.stringify(got)}`);
  }
}

const created = await unkey.keys.createKey({
  apiId: "default",
  name: "js-client",
  permissions: ["documents:read"],
  meta: { plan: "pro" },
  credits: { remaining: 5 },
});
expect("requestId present", created.meta.requestId.length > 0, true);
const { key, keyId } = created.data;

const v = await unkey.keys.verifyKey({ key, permissions: "documents:read" });
expect("code", v.data.code, "VALID");
expect("valid", v.data.valid, true);
expect("keyId", v.data.keyId, keyId);
expect("credits", v.data.credits, 4);
expect("meta", v.data.meta, { plan: "pro" });

const denied = await unkey.keys.verifyKey({ key, permissions: "documents:write" });
expect("code", denied.data.code, "INSUFFICIENT_PERMISSIONS");

await unkey.keys.deleteKey({ keyId });
const gone = await unkey.keys.verifyKey({ key });
expect("code after delete", gone.data.code, "NOT_FOUND");

console.log("@unkey/api: all steps passed");
