module github.com/graceserve/graceserve/tests/go

go 1.26
