"""home-energy-kiosk: the launcher that puts the dashboard on the wall screen."""
