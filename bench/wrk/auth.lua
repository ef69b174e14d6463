-- GET with the credential in a header (KG_AUTH: the whole Authorization value), as a
-- forward-auth proxy sends it.
wrk.method = "GET"
wrk.headers["Authorization"] = os.getenv("KG_AUTH")
