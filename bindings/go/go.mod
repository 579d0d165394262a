module github.com/graceserve/graceserve/bindings/go

go 1.26
