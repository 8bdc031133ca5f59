-- wrk: GET /api/v1/cases as one of the 1000 residents with a session (bench/cases_data.sql made them).
request = function()
    local n = math.random(1, 1000)
    return wrk.format("GET", "/api/v1/cases", { ["Cookie"] = "__Host-portal-session=bench-token-" .. n })
end
