"""Verifies a run-notifier webhook with the official Standard Webhooks library.

pip install standardwebhooks
python3 verify.py SECRET headers.json body.bin
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

secret, headers_file, body_file = sys.argv[1:4]
headers = json.load(open(headers_file))
body = open(body_file, "rb").read()

# Raises WebhookVerificationError on a bad signature or a timestamp older than 5 minutes.
payload = Webhook(secret).verify(body, headers)

# Deduplicate on webhook-id: retries and repeated cancels of one run carry the same id.
print("verified", headers["webhook-id"], payload["runId"], payload["status"])
