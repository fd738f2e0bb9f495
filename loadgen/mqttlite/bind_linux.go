package mqttlite

import "syscall"

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT (include/uapi/linux/in.h).
const ipBindAddressNoPort = 24

// bindNoPort defers the choice of the local port of a connection with a fixed source address
// from bind to connect, where the kernel can reuse a port towards another destination.
// Without it every bind takes a port of its own for that address, ports in TIME_WAIT
// included, and tens of thousands of connections per address exhaust and slow the search.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
