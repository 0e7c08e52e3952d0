-- wrk: GET a console page with a session cookie (BENCH_COOKIE, "cm_session=…").
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")
