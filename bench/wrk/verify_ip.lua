-- POST /api/v1/verify with one valid token (KG_TOKEN) on behalf of the client KG_IP.
wrk.method = "POST"
wrk.body = '{"token":"' .. os.getenv("KG_TOKEN") .. '","scopes":["metrics:read"],"ip":"'
    .. os.getenv("KG_IP") .. '"}'
wrk.headers["Content-Type"] = "application/json"
