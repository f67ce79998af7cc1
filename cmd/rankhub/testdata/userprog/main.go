// Command userprog is a user's program for the CLI tests of rankhub start
// and rankhub engines: functions registered only here, no driver, so rank 0
// serves outside clients.
package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/rankhub/rankhub"
)

func main() {
	rankhub.Register("add_ab", func(a, b int) int { return a + b })
	rankhub.Register("pid", func(int) int { return os.Getpid() })
	// shout prints to stdout and stderr and starts a process that prints.
	rankhub.Register("shout", func(word string) (string, error) {
		fmt.Println("out:", word)
		fmt.Fprintln(os.Stderr, "err:", word)
		cmd := exec.Command("sh", "-c", "echo child: "+word)
		cmd.Stdout = os.Stdout
		if err := cmd.Run(); err != nil {
			return "", err
		}
		return word, nil
	})
	rankhub.Main(nil)
}
