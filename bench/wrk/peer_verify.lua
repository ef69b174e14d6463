-- The peer's POST /verify: the same body as keygate's, the key in the header its library reads.
wrk.method = "POST"
wrk.body = '{"token":"' .. string.rep("x", 69) .. '","scopes":["metrics:read"]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("KG_AUTH")
