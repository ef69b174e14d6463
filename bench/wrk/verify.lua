-- POST /api/v1/verify with one valid token (KG_TOKEN).
wrk.method = "POST"
wrk.body = '{"token":"' .. os.getenv("KG_TOKEN") .. '","scopes":["metrics:read"]}'
wrk.headers["Content-Type"] = "application/json"
