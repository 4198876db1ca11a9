package cli

import "fmt"

// agentArgs splits the arguments of run and plan, [AGENT] [-- CMD ARGS...],
// as cobra hands them over (dash is cmd.ArgsLenAtDash()). Both verbs parse
// with this one function, so plan never shows a launch that run would
// refuse, or a different one.
func agentArgs(verb string, args []string, dash int) (name string, command []string, err error) {
	switch {
	case dash == 0:
		command = args
	case dash > 0:
		if dash > 1 {
			return "", nil, fmt.Errorf("%s takes one AGENT before --", verb)
		}
		name, command = args[0], args[1:]
	default:
		if len(args) > 1 {
			return "", nil, fmt.Errorf("%s takes one AGENT; to run a command in the bottle, put it after --", verb)
		}
		if len(args) == 1 {
			name = args[0]
		}
	}
	if dash >= 0 && len(command) == 0 {
		return "", nil, fmt.Errorf("nothing after --: give a command, or drop the --")
	}
	return name, command, nil
}
