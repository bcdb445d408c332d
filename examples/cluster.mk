# The cluster example (examples/cluster): TestCluster runs in `make test`
# with the other packages; cluster-demo starts the same cluster and keeps
# it up for a user to try. Network namespaces need root.
.PHONY: cluster-demo

cluster-demo: build
	@test "$$(id -u)" = 0 || { echo "cluster-demo creates network namespaces: run it as root (sudo make cluster-demo)"; exit 1; }
	$(GO) test -c -o $(BIN)/cluster.test ./examples/cluster
	cd examples/cluster && STIRGATE_BIN=$(CURDIR)/$(BIN)/stirgate $(CURDIR)/$(BIN)/cluster.test -test.run '^TestCluster$$' -test.v -test.timeout 0 -demo
