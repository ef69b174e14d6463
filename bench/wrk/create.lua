-- POST /api/v1/tokens with the bootstrap token (KG_AUTH): durable creates.
wrk.method = "POST"
wrk.body = '{"name":"bench","scopes":["metrics:read"]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("KG_AUTH")
