// Verifies a run-notifier webhook with the official Standard Webhooks library.
//
// npm install standardwebhooks
// node verify.mjs SECRET headers.json body.bin
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const [secret, headersFile, bodyFile] = process.argv.slice(2);
const headers = JSON.parse(readFileSync(headersFile, "utf8"));
const body = readFileSync(bodyFile, "utf8"); // the raw body, exactly as received

// Throws on a bad signature or a timestamp outside the tolerance.
const payload = new Webhook(secret).verify(body, headers);

// Deduplicate on webhook-id: retries and repeated cancels of one run carry the same id.
console.log("verified", headers["webhook-id"], payload.runId, payload.status);
