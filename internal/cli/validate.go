package cli

import (
	"context"
	"fmt"
)

func runValidate(_ context.Context, _ []string, stdio IO) int {
	fmt.Fprintln(stdio.Err, "epconsole validate: not implemented yet")
	return 3
}
