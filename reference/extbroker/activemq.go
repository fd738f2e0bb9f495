package extbroker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// ActiveMQInstallHint says how to get the broker StartActiveMQ runs. Debian's activemq
// package lacks the MQTT codec its MQTT transport needs (every connection fails with
// NoClassDefFoundError org/fusesource/mqtt/codec/...), which libmqtt-client-java provides.
const ActiveMQInstallHint = "install with: sudo apt-get install -y activemq libmqtt-client-java  (Debian/Ubuntu)"

// RequireActiveMQEnv, when set to 1, turns "activemq not installed" from a skip into a failure.
const RequireActiveMQEnv = "RTCOMM_REQUIRE_ACTIVEMQ"

// activeMQStartTimeout bounds ActiveMQ's boot (a JVM: ~2 s alone, more on a busy machine).
const activeMQStartTimeout = 60 * time.Second

// activeMQFiles are what StartActiveMQ needs from the Debian packages.
var activeMQFiles = struct{ home, jar, mqttCodec string }{
	home:      "/usr/share/activemq",
	jar:       "/usr/share/activemq/bin/activemq.jar",
	mqttCodec: "/usr/share/java/mqtt-client.jar", // package libmqtt-client-java
}

// ActiveMQPaths finds java, ActiveMQ's launcher jar and the MQTT codec jar.
func ActiveMQPaths() (java, jar, codec string, err error) {
	java, err = exec.LookPath("java")
	if err != nil {
		return "", "", "", fmt.Errorf("activemq: java: %w (%s)", ErrNotInstalled, ActiveMQInstallHint)
	}
	for _, f := range []string{activeMQFiles.jar, activeMQFiles.mqttCodec} {
		if _, err := os.Stat(f); err != nil {
			return "", "", "", fmt.Errorf("activemq: %s: %w (%s)", f, ErrNotInstalled, ActiveMQInstallHint)
		}
	}
	return java, activeMQFiles.jar, activeMQFiles.mqttCodec, nil
}

// StartActiveMQ starts a private ActiveMQ Classic broker (Debian's activemq package) with one
// MQTT transport connector on a free loopback port, no persistence, no JMX, anonymous access,
// its configuration and data under a temporary directory. Debian's package ships no
// WebSocket transport (activemq-http and Jetty are left out: a ws:// connector fails with
// "Transport scheme NOT recognized: [ws]"), so the Process has no WS URL. Stop it with Close.
func StartActiveMQ(ctx context.Context) (*Process, error) {
	java, jar, codec, err := ActiveMQPaths()
	if err != nil {
		return nil, err
	}
	return retryStart(ctx, 2, func() (*Process, error) { return startActiveMQOnce(ctx, java, jar, codec) })
}

func startActiveMQOnce(ctx context.Context, java, jar, codec string) (*Process, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	mqttPort := ports[0]
	dir, err := os.MkdirTemp("", "rtcomm-activemq-")
	if err != nil {
		return nil, fmt.Errorf("activemq: temp dir: %w", err)
	}
	for _, d := range []string{"conf", "data", "lib"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("activemq: %w", err)
		}
	}
	// ACTIVEMQ_BASE/lib is on the broker's extension class path: the MQTT codec goes there.
	if err := os.Symlink(codec, filepath.Join(dir, "lib", filepath.Base(codec))); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("activemq: %w", err)
	}
	// transport.defaultKeepAlive: rtcomm.js asks for 60 s; ActiveMQ honours the client's value.
	xml := fmt.Sprintf(`<!-- written by rtcomm-harness -->
<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="rtcomm" useJmx="false"
          persistent="false" advisorySupport="false" dataDirectory="%s">
    <transportConnectors>
      <transportConnector name="mqtt" uri="mqtt://127.0.0.1:%d"/>
    </transportConnectors>
  </broker>
</beans>
`, filepath.Join(dir, "data"), mqttPort)
	log4j := "log4j.rootLogger=WARN, stdout\n" +
		"log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n" +
		"log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n" +
		"log4j.appender.stdout.layout.ConversionPattern=%d %-5p %c - %m%n\n"
	if err := writeFiles(filepath.Join(dir, "conf"), map[string]string{"activemq.xml": xml, "log4j.properties": log4j}); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("activemq: config: %w", err)
	}
	conf := filepath.Join(dir, "conf")
	// What /usr/bin/activemq runs, without its switch to the activemq user and its pid file.
	cmd := exec.Command(java, "-Xms64M", "-Xmx512M",
		"--add-opens", "java.base/java.lang=ALL-UNNAMED",
		"-Dactivemq.classpath="+conf,
		"-Dactivemq.home="+activeMQFiles.home,
		"-Dactivemq.base="+dir,
		"-Dactivemq.conf="+conf,
		"-Dactivemq.data="+filepath.Join(dir, "data"),
		"-jar", jar, "start", "xbean:file:"+filepath.Join(conf, "activemq.xml"))
	cmd.Dir = dir
	return startChild(ctx, childSpec{
		name: "activemq", dir: dir, cmd: cmd, ports: []int{mqttPort}, timeout: activeMQStartTimeout,
		tcp: "tcp://127.0.0.1:" + strconv.Itoa(mqttPort),
	})
}
