module github.com/keepproject/keep

go 1.26.8
