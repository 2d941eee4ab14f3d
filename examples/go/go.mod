module viur-session-functions/examples/go

go 1.19
