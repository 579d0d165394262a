module graceserve/tests/conformance/goref

go 1.24
