module github.com/srsproxy/srsproxy

go 1.26.8
