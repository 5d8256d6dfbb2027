package main

// The volume drivers keep server, up and bench can use: each registers
// its --volume URL scheme and its Arvados Driver name with keepstore,
// and nothing else in this program names one.
import (
	_ "github.com/keepproject/keep/keepstore/dirvolume"
	_ "github.com/keepproject/keep/keepstore/s3volume"
)
