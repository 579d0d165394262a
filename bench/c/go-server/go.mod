module graceserve.bench/c/go-server

go 1.24
