// Starts AWS's DynamoDB Local bound to 127.0.0.1 only. DynamoDB Local has no host option and binds
// every interface; this launcher builds the server from the usual command-line arguments, then sets
// the host of its Jetty connectors before starting it.
//
// Run as a single-file program (Java 11+):
//   java -Djava.library.path=<lib> -cp <DynamoDBLocal.jar>:<lib>/* LoopbackDynamoDBLocal.java \
//        -inMemory -disableTelemetry -port 8000

import java.lang.reflect.Field;

import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("switchboard.host", "127.0.0.1");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field f = DynamoDBProxyServer.class.getDeclaredField("server");
        f.setAccessible(true);
        Server server = (Server) f.get(proxy);
        for (Connector c : server.getConnectors()) {
            if (c instanceof ServerConnector) {
                ((ServerConnector) c).setHost(host);
            }
        }
        proxy.start();
        System.out.println("DynamoDB Local listening on " + host);
        proxy.join();
    }
}
