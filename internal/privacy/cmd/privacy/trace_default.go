//go:build !privacytrace

package main

func traced() bool { return false }
