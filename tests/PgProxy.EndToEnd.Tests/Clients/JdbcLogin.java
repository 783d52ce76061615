import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Properties;

/**
 * Logs in with pgJDBC and prints "user|ssl" of the server session (pg_stat_ssl), or "ERROR sqlstate message".
 * Arguments: JDBC URL, user, password. Run by the end-to-end tests as a single-file Java program.
 */
public final class JdbcLogin {
    public static void main(String[] args) {
        Properties properties = new Properties();
        properties.setProperty("user", args[1]);
        properties.setProperty("password", args[2]);
        properties.setProperty("connectTimeout", "15");
        try (Connection connection = DriverManager.getConnection(args[0], properties);
             ResultSet row = connection.createStatement().executeQuery(
                 "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")) {
            row.next();
            System.out.println(row.getString(1) + "|" + (row.getBoolean(2) ? "t" : "f"));
        } catch (SQLException e) {
            System.out.println("ERROR " + e.getSQLState() + " " + e.getMessage());
        }
    }
}
