import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;

/**
 * LISTEN on one pgJDBC connection, NOTIFY from another, and the notifications read back with getNotifications: prints
 * "ok COUNT" when every payload arrived once, in order, on the right channel, or "ERROR ..." otherwise.
 * Arguments: JDBC URL, user, password, channel, count.
 */
public final class JdbcListen {
    public static void main(String[] args) throws Exception {
        Properties properties = new Properties();
        properties.setProperty("user", args[1]);
        properties.setProperty("password", args[2]);
        properties.setProperty("connectTimeout", "15");
        String channel = args[3];
        int count = Integer.parseInt(args[4]);
        try (Connection listener = DriverManager.getConnection(args[0], properties);
             Connection notifier = DriverManager.getConnection(args[0], properties)) {
            try (Statement statement = listener.createStatement()) {
                statement.execute("LISTEN " + channel);
            }
            try (Statement statement = notifier.createStatement()) {
                for (int i = 1; i <= count; i++) {
                    statement.execute("NOTIFY " + channel + ", 'payload " + i + "'");
                }
            }
            List<String> received = new ArrayList<>();
            long deadline = System.currentTimeMillis() + 30_000;
            while (received.size() < count && System.currentTimeMillis() < deadline) {
                PGNotification[] notifications = listener.unwrap(PGConnection.class).getNotifications(5_000);
                if (notifications == null) {
                    continue;
                }
                for (PGNotification notification : notifications) {
                    if (!channel.equals(notification.getName())) {
                        System.out.println("ERROR wrong channel " + notification.getName());
                        return;
                    }
                    received.add(notification.getParameter());
                }
            }
            for (int i = 1; i <= count; i++) {
                if (received.size() < i || !("payload " + i).equals(received.get(i - 1))) {
                    System.out.println("ERROR received " + received);
                    return;
                }
            }
            if (received.size() != count) {
                System.out.println("ERROR received " + received);
                return;
            }
            System.out.println("ok " + count);
        }
    }
}
