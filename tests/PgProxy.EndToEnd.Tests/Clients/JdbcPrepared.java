import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Runs server-side prepared statements with pgJDBC (prepareThreshold=1: a named statement from the first use) on
 * several connections at once, each with a different text under the same statement names, and prints
 * "ok CONNECTIONS BACKENDS" when every result was right, or "ERROR ..." on the first wrong one.
 * Arguments: JDBC URL, user, password, connections, rounds.
 */
public final class JdbcPrepared {
    public static void main(String[] args) throws Exception {
        int connections = Integer.parseInt(args[3]);
        int rounds = Integer.parseInt(args[4]);
        ConcurrentHashMap<Integer, Boolean> backends = new ConcurrentHashMap<>();
        List<String> errors = java.util.Collections.synchronizedList(new ArrayList<>());
        List<Thread> threads = new ArrayList<>();
        for (int c = 0; c < connections; c++) {
            final int factor = c + 1;
            Thread thread = new Thread(() -> {
                Properties properties = new Properties();
                properties.setProperty("user", args[1]);
                properties.setProperty("password", args[2]);
                properties.setProperty("prepareThreshold", "1");
                properties.setProperty("connectTimeout", "15");
                try (Connection connection = DriverManager.getConnection(args[0], properties);
                     PreparedStatement statement = connection.prepareStatement("SELECT ?::int * " + factor + ", pg_backend_pid(), 0.1::float8::text")) {
                    for (int round = 1; round <= rounds; round++) {
                        statement.setInt(1, round);
                        try (ResultSet row = statement.executeQuery()) {
                            row.next();
                            if (row.getInt(1) != round * factor || !"0.1".equals(row.getString(3))) {
                                errors.add("wrong result " + row.getInt(1) + " " + row.getString(3) + " for " + round + "*" + factor);
                            }
                            backends.put(row.getInt(2), true);
                        }
                    }
                } catch (Exception e) {
                    errors.add(e.toString());
                }
            });
            threads.add(thread);
            thread.start();
        }
        for (Thread thread : threads) {
            thread.join();
        }
        System.out.println(errors.isEmpty() ? "ok " + connections + " " + backends.size() : "ERROR " + errors.get(0));
    }
}
