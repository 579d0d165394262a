module github.com/graceserve/graceserve/bench/go

go 1.26

require github.com/graceserve/graceserve/bindings/go v0.0.0

replace github.com/graceserve/graceserve/bindings/go => ../../bindings/go
